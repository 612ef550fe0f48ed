"""Re-export of the shared error types (defined on the device side, which has no TensorFlow)."""

from segnet_edge.device.errors import DataError, ModelFileError, UsageError

__all__ = ["UsageError", "DataError", "ModelFileError"]
