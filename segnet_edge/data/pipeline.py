"""tf.data input pipeline: shuffle, flip and scale-crop augmentation, THE normalisation, batch, prefetch.

Frames arrive decoded, checked and resized by `loader.py` (OpenCV, shared with
calibration); normalisation is `device.preprocess.normalize`, the same function
the board runs, applied here to tensors.
"""

from __future__ import annotations

import numpy as np

from segnet_edge._tf import tf
from segnet_edge.device.metadata import Normalization
from segnet_edge.device.preprocess import normalize


def _augment(image, label, min_scale: float):
    """Random horizontal flip and a random crop of at least `min_scale`, resized back."""
    height, width = image.shape[0], image.shape[1]
    flip = tf.random.uniform(()) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    scale = tf.random.uniform((), min_scale, 1.0)
    y0 = tf.random.uniform(()) * (1.0 - scale)
    x0 = tf.random.uniform(()) * (1.0 - scale)
    boxes = tf.stack([y0, x0, y0 + scale, x0 + scale])[None]
    image = tf.image.crop_and_resize(tf.cast(image[None], tf.float32), boxes, [0], (height, width))[0]
    label = tf.image.crop_and_resize(
        tf.cast(label[None, :, :, None], tf.float32), boxes, [0], (height, width), method="nearest"
    )[0, :, :, 0]
    return image, tf.cast(label, tf.uint8)


def make_dataset(images: np.ndarray, labels: np.ndarray, norm: Normalization, batch_size: int,
                 augment: bool = False, shuffle: bool = False, seed: int = 0,
                 min_crop_scale: float = 0.75) -> tf.data.Dataset:
    """(normalised float32 frames, uint8 labels) batches from in-memory uint8 arrays."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment:
        dataset = dataset.map(lambda x, y: _augment(x, y, min_crop_scale), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda x, y: (normalize(x, norm), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def predict_labels(model, images: np.ndarray, norm: Normalization, batch_size: int = 4) -> np.ndarray:
    """Class index per pixel (uint8) for uint8 BGR frames, batch by batch to bound memory."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start : start + batch_size], norm)
        probabilities = model(batch, training=False)
        out.append(np.asarray(tf.argmax(probabilities, axis=-1, output_type=tf.int32), dtype=np.uint8))
    return np.concatenate(out)
