"""THE preprocessing: used by training, calibration and the device runtime alike.

A frame is a uint8 BGR image as OpenCV reads it. `resize_frame` brings it to
the model's input size and `normalize` turns it into the model's float input.
`normalize` is plain arithmetic, so the same function runs on numpy arrays (board,
calibration) and on TensorFlow tensors (training), and the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from segnet_edge.device.metadata import InputLRN, Normalization, TensorQuantization


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR uint8 frame to (height, width) with bilinear interpolation."""
    import cv2

    height, width = size
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map with nearest neighbour, so no invented class appears at edges."""
    import cv2

    height, width = size
    if labels.shape[0] == height and labels.shape[1] == width:
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def normalize(frames, norm: Normalization):
    """uint8 BGR frames (..., H, W, 3) -> float32 model input. Works on numpy and tf tensors."""
    if norm.channel_order == "RGB":
        frames = frames[..., ::-1]
    mean = np.asarray(norm.mean, dtype=np.float32)
    inv_std = (1.0 / np.asarray(norm.std, dtype=np.float32)).astype(np.float32)
    if isinstance(frames, np.ndarray):
        x = (frames.astype(np.float32) - mean) * inv_std
    else:
        import tensorflow as tf  # only reached on the host, when called with a tensor

        x = (tf.cast(frames, tf.float32) - mean) * inv_std
    return x if norm.lrn is None else local_response_norm(x, norm.lrn)


def local_response_norm(x, lrn: InputLRN):
    """Caffe's across-channel LRN, x / (k + alpha / size * sum of squares in the window) ** beta, in plain
    arithmetic on numpy arrays and tf tensors alike (the same as tf.nn.local_response_normalization)."""
    channels = int(x.shape[-1])
    radius = lrn.size // 2
    scale, k, power = np.float32(lrn.alpha / lrn.size), np.float32(lrn.k), np.float32(-lrn.beta)
    if isinstance(x, np.ndarray):
        def squares(lo: int, hi: int):  # einsum: ~3x numpy's sum over a 3-wide last axis
            window = x[..., lo:hi]
            return np.einsum("...c,...c->...", window, window)[..., None]
    else:
        import tensorflow as tf

        def squares(lo: int, hi: int):
            return tf.reduce_sum(tf.square(x[..., lo:hi]), axis=-1, keepdims=True)
    if radius >= channels - 1:  # the window spans every channel (SegNet-Basic's 5 over 3): one sum per pixel
        return x * (k + scale * squares(0, channels)) ** power
    factors = [(k + scale * squares(max(0, c - radius), c + radius + 1)) ** power for c in range(channels)]
    if isinstance(x, np.ndarray):
        return x * np.concatenate(factors, axis=-1)
    return x * tf.concat(factors, axis=-1)


def preprocess(frame: np.ndarray, size: tuple[int, int], norm: Normalization) -> np.ndarray:
    """One BGR uint8 frame -> float32 (H, W, 3) model input."""
    return normalize(resize_frame(frame, size), norm)


def quantize(x: np.ndarray, q: TensorQuantization) -> np.ndarray:
    """Float model input -> the integer input of a full-integer model."""
    if not q.is_integer:
        return x.astype(np.float32, copy=False)
    info = np.iinfo(q.dtype)
    return np.clip(np.round(x / q.scale) + q.zero_point, info.min, info.max).astype(q.dtype)


def dequantize(x: np.ndarray, q: TensorQuantization) -> np.ndarray:
    """Integer model output -> float, e.g. int8 probabilities -> [0, 1]."""
    if not q.is_integer:
        return x.astype(np.float32, copy=False)
    return (x.astype(np.float32) - q.zero_point) * np.float32(q.scale)
