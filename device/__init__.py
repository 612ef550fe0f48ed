"""The on-board runtime: numpy, OpenCV and an inference runtime only, never TensorFlow.

Embedding a converted model in an application::

    from segnet_edge.device import open_model

    with open_model("export/model_int8.tflite", threads=2) as model:
        segmentation = model.segment(frame)  # a uint8 BGR frame, any size
        segmentation.labels                   # (H, W) uint8 class map at the model's input size
        segmentation.frame_labels             # the same at the frame's size
"""

from __future__ import annotations


def open_model(path, backend: str | None = None, threads: int | None = None):
    """A converted model (.tflite / .onnx / .engine), checked and ready: use it as a context manager, then
    `segment(frame)` per frame, or `run(inputs)` on preprocessed float inputs; both are composed of the steps
    `prepare_input` -> `infer` -> `to_labels` / `to_scores` / `to_segmentation`, which a caller splitting them
    across threads uses directly. `backend` overrides the one the file's extension picks; only that runtime is
    imported."""
    from segnet_edge.device.backends.base import BackendOptions, load_backend

    return load_backend(path, backend, BackendOptions(threads=threads))
