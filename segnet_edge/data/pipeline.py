"""tf.data input pipeline: shuffle, flip and scale-crop augmentation, THE normalisation, batch, prefetch.

A split's frames come from `loader.py` either way: gathered from the arrays of a
split held in memory, or read, decoded, checked and resized inside tf.data by
`load_sample` (OpenCV through tf.numpy_function, in parallel) for a streamed one.
Both start from the same shuffled indices and share every later step, so a
streamed split yields the batches an in-memory one would. Normalisation is
`device.preprocess.normalize`, the same function the board runs, applied here to tensors.
"""

from __future__ import annotations

import numpy as np

from segnet_edge._tf import tf
from segnet_edge.data.loader import LoadedSplit, Split
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


def _reader(split: Split):
    """index -> (uint8 frame (H, W, 3), uint8 label (H, W)) as a tf.data map function."""
    if isinstance(split, LoadedSplit):
        images, labels = tf.convert_to_tensor(split.images), tf.convert_to_tensor(split.labels)
        return lambda i: (tf.gather(images, i), tf.gather(labels, i))
    height, width = split.input_size

    def read(index):
        return split.read(int(index))

    def load(i):
        image, label = tf.numpy_function(read, [i], (tf.uint8, tf.uint8), stateful=False)
        image.set_shape((height, width, 3))
        label.set_shape((height, width))
        return image, label

    return load


def shard_indices(count: int, shards: int, index: int) -> range:
    """The split's indices shard `index` of `shards` reads (tf.data.Dataset.shard's rule)."""
    return range(index, count, shards)


def split_dataset(split: Split, norm: Normalization, batch_size: int, augment: bool = False,
                  shuffle: bool = False, seed: int = 0, min_crop_scale: float = 0.75,
                  shard: tuple[int, int] | None = None, repeat: bool = False) -> tf.data.Dataset:
    """(normalised float32 frames, uint8 labels) batches of a split held in memory or streamed from disk.

    `shard` = (shards, index): this input pipeline reads only every shards-th frame (one worker's share);
    `repeat`: an endless stream of reshuffled passes, for a fit whose steps per epoch are given.
    """
    indices = tf.data.Dataset.range(len(split))
    if shard is not None:
        indices = indices.shard(*shard)
    if shuffle:
        indices = indices.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    dataset = indices.map(_reader(split), num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        dataset = dataset.map(lambda x, y: _augment(x, y, min_crop_scale), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda x, y: (normalize(x, norm), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_dataset(images: np.ndarray, labels: np.ndarray, norm: Normalization, batch_size: int,
                 augment: bool = False, shuffle: bool = False, seed: int = 0,
                 min_crop_scale: float = 0.75) -> tf.data.Dataset:
    """(normalised float32 frames, uint8 labels) batches from in-memory uint8 arrays."""
    return split_dataset(LoadedSplit(images, labels, []), norm, batch_size, augment, shuffle, seed, min_crop_scale)


def predict_labels(model, images: np.ndarray, norm: Normalization, batch_size: int = 4) -> np.ndarray:
    """Class index per pixel (uint8) for uint8 BGR frames, batch by batch to bound memory."""
    return np.concatenate([predict_batch(model, images[start : start + batch_size], norm)
                           for start in range(0, len(images), batch_size)])


def predict_batch(model, images: np.ndarray, norm: Normalization) -> np.ndarray:
    """Class index per pixel (uint8) for one batch of uint8 BGR frames."""
    probabilities = model(normalize(images, norm), training=False)
    return np.asarray(tf.argmax(probabilities, axis=-1, output_type=tf.int32), dtype=np.uint8)
