"""The representative set shared by every int8 path, and its adapters (TFLite, ONNX Runtime, TensorRT).

`representative` builds and stores the set (numpy + OpenCV only); the adapters in
`tflite`, `onnxruntime` and `tensorrt` import their runtime when imported themselves.
"""

from segnet_edge.calibration.representative import (
    CalibrationRecipe,
    CalibrationSet,
    build_calibration_set,
    load_calibration_set,
    load_or_build,
)

__all__ = ["CalibrationRecipe", "CalibrationSet", "build_calibration_set", "load_calibration_set", "load_or_build"]
