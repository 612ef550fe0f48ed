"""The same SegNet with other pooling designs, for the pooling-design table.

Three ways to give SegNet's decoder the encoder's pooling positions:

- "argmax" (ours): `MaxPoolingWithArgmax2D` + `MaxUnpooling2D`, builtin ops only, a 2-bit window code;
- "tf-argmax": the common `tf.nn.max_pool_with_argmax` + `tf.scatter_nd` layers, int64 flat indices
  (Keras only: the converter needs Flex ops for MaxPoolWithArgmax, which TF 2.21's TFLite interpreter
  and the board's LiteRT runtime cannot run);
- "plain": max pooling + nearest upsampling, no indices at all (not SegNet any more: the floor the
  index machinery is measured against).

Variants are made by swapping layers in a built model (`keras.models.clone_model`) and copying the
weights, so every other op and weight is identical and only the pooling differs.
"""

from __future__ import annotations

from dataclasses import dataclass

POOLING_DESIGNS = ("argmax", "tf-argmax", "plain")


@dataclass(frozen=True)
class IndexMemory:
    """Bytes of pooling indices one frame keeps alive between encoder and decoder."""

    positions: int  # pooled elements over all levels (one index each)

    @property
    def two_bit_bytes(self) -> int:
        """Our window code 0..3 needs 2 bits (the graph holds int32, a runtime may pack it)."""
        return (2 * self.positions + 7) // 8

    @property
    def int32_bytes(self) -> int:
        """What our graph actually materialises (ARG_MAX's int32 output)."""
        return 4 * self.positions

    @property
    def int64_bytes(self) -> int:
        """`tf.nn.max_pool_with_argmax`'s flat int64 indices."""
        return 8 * self.positions

    def to_json(self) -> dict:
        return {"positions": self.positions, "two_bit_bytes": self.two_bit_bytes, "int32_bytes": self.int32_bytes,
                "int64_bytes": self.int64_bytes}


def index_memory(model) -> IndexMemory:
    """Count the pooled elements of every argmax pooling layer (each needs one index)."""
    from segnet_edge.layers import MaxPoolingWithArgmax2D

    positions = 0
    for layer in model.layers:
        if isinstance(layer, MaxPoolingWithArgmax2D):
            _, h, w, c = layer.output[0].shape
            positions += int(h) * int(w) * int(c)
    return IndexMemory(positions)


def _layers():
    """The replacement layer classes, defined lazily so importing this module needs no TensorFlow."""
    from segnet_edge._tf import keras, tf
    from segnet_edge.convert.ort_pooling import stand_in_layers

    # the stand-ins `convert` exports ONNX Runtime's MaxPool(Indices) + MaxUnpool graph from
    PlainPool2D, NearestUpsample2D = stand_in_layers()

    class TfArgmaxPool2D(keras.layers.Layer):
        """The common SegNet layer: `tf.nn.max_pool_with_argmax`, flat int64 indices (batch included)."""

        def call(self, inputs):
            pooled, argmax = tf.nn.max_pool_with_argmax(inputs, 2, 2, "SAME", include_batch_in_index=True)
            return [pooled, argmax]

        def compute_mask(self, inputs, mask=None):
            return [None, None]

    class ScatterUnpool2D(keras.layers.Layer):
        """The common SegNet unpooling: scatter each pooled value to its flat int64 index."""

        def __init__(self, output_size=None, **kwargs):
            super().__init__(**kwargs)
            self.output_size = output_size

        def call(self, inputs):
            values, argmax = inputs
            _, h, w, c = values.shape
            out_h, out_w = self.output_size or (2 * h, 2 * w)
            batch = tf.shape(values, out_type=tf.int64)[0]
            flat_size = batch * out_h * out_w * c
            flat = tf.scatter_nd(tf.reshape(argmax, [-1, 1]), tf.reshape(values, [-1]), tf.reshape(flat_size, [1]))
            return tf.reshape(flat, [-1, out_h, out_w, c])

    return PlainPool2D, NearestUpsample2D, TfArgmaxPool2D, ScatterUnpool2D


def with_pooling(model, design: str):
    """`model` (built by segnet_edge.models) with `design` pooling; same weights, same other ops."""
    from segnet_edge.convert.ort_pooling import with_pooling_layers

    if design not in POOLING_DESIGNS:
        raise ValueError(f"unknown pooling design {design!r}; use one of {POOLING_DESIGNS}")
    if design == "argmax":
        return model
    plain_pool, nearest, tf_pool, scatter = _layers()
    return with_pooling_layers(model, *((plain_pool, nearest) if design == "plain" else (tf_pool, scatter)))
