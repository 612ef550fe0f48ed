"""Re-export of the atomic writers, which live on the device side (no TensorFlow) so the board can use them."""

from segnet_edge.device.atomic import atomic_path, write_bytes_atomic, write_text_atomic

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]
