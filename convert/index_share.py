"""How much of an int8 TFLite model's disagreement comes from SegNet's pooling indices.

int8 rounding turns near-ties inside 2x2 pooling windows into exact ties, which the
runtime breaks by position where float broke them by value; the decoder then puts a
value one pixel off. To tell that apart from ordinary int8 arithmetic error, the
float Keras model is run again with every pooling index taken from the int8
interpreter (its ARG_MAX outputs) and everything else in float: if that alone loses
as many pixels as the int8 model does, the indices are the cause, and the fix is in
the indices (QAT, a wider model), not in the calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class IndexShare:
    artifact_agreement: float  # the int8 model against Keras, on these frames
    index_only_agreement: float  # float Keras, fed the int8 model's pooling indices, against Keras
    index_disagreement: tuple[float, ...]  # per pooling level (block1 first): share of windows whose index differs

    @property
    def points_lost(self) -> float:
        return 100 * (1 - self.artifact_agreement)

    @property
    def points_from_indices(self) -> float:
        return 100 * (1 - self.index_only_agreement)

    def to_json(self) -> dict:
        return {"artifact_agreement": round(self.artifact_agreement, 6),
                "index_only_agreement": round(self.index_only_agreement, 6),
                "index_disagreement": [round(d, 6) for d in self.index_disagreement]}

    def line(self) -> str:
        levels = ", ".join(f"{100 * d:.1f}" for d in self.index_disagreement)
        return (f"pooling indices: float Keras fed this model's int8 indices alone loses {self.points_from_indices:.2f} "
                f"of the {self.points_lost:.2f} points of agreement int8 loses (windows whose index differs, "
                f"pooling levels 1..{len(self.index_disagreement)}: {levels}%)")


def _fixed_index_pool():
    """A pooling layer that pools as ours does but returns indices set from outside (a non-trainable weight)."""
    from segnet_edge._tf import tf
    from segnet_edge.layers import MaxPoolingWithArgmax2D

    class FixedIndexPool(MaxPoolingWithArgmax2D):
        def build(self, input_shape):
            _, h, w, c = input_shape
            self.fixed = self.add_weight(name="fixed_indices", shape=(1, (h + 1) // 2, (w + 1) // 2, c),
                                         dtype="int32", initializer="zeros", trainable=False)
            super().build(input_shape)

        def call(self, inputs, training=None):
            pooled, _ = super().call(inputs, training=False)
            return [pooled, tf.identity(self.fixed)]

    return FixedIndexPool


def measure_index_share(keras_model, tflite_path: Path, inputs: np.ndarray,
                        reference: np.ndarray | None = None) -> IndexShare | None:
    """None where it does not apply: no argmax pooling in the model, or not one ARG_MAX per pooling layer.
    `reference`: the Keras model's probabilities on `inputs`, when the caller has them already."""

    from segnet_edge._tf import keras
    from segnet_edge.layers import MaxPoolingWithArgmax2D

    pools = [layer for layer in keras_model.layers if isinstance(layer, MaxPoolingWithArgmax2D)]
    if not pools:
        return None
    from segnet_edge.convert.layer_error import run_flatbuffer

    int8_run = run_flatbuffer(Path(tflite_path).read_bytes(), inputs, indices=True)
    int8_out, int8_indices = int8_run.probabilities, int8_run.indices
    shapes = [tuple(int(d) for d in layer.output[1].shape[1:]) for layer in pools]
    if not int8_indices or len(int8_indices[0]) != len(pools) or any(
            got.size != int(np.prod(shape)) for got, shape in zip(int8_indices[0], shapes)):
        return None
    fixed_cls = _fixed_index_pool()

    def clone_layer(layer):
        if isinstance(layer, MaxPoolingWithArgmax2D):
            return fixed_cls.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(keras_model, clone_function=clone_layer)
    for layer in twin.layers:
        if layer.weights and not isinstance(layer, fixed_cls):
            layer.set_weights(keras_model.get_layer(layer.name).get_weights())
    probe = keras.Model(keras_model.input, [layer.output[1] for layer in pools])
    if reference is None:
        reference = keras_model.predict(inputs, batch_size=1, verbose=0)
    reference = reference.argmax(-1)
    float_indices = probe.predict(inputs, batch_size=1, verbose=0)
    twin_pools = [twin.get_layer(layer.name) for layer in pools]
    differ = np.zeros(len(pools))
    injected = []
    for n, frame in enumerate(inputs):
        for k, (layer, shape) in enumerate(zip(twin_pools, shapes)):
            value = int8_indices[n][k].reshape(1, *shape).astype(np.int32)
            layer.fixed.assign(value)
            differ[k] += np.mean(value[0] != float_indices[k][n])
        injected.append(twin(frame[None], training=False).numpy().argmax(-1))
    return IndexShare(
        artifact_agreement=float(np.mean(int8_out.argmax(-1) == reference)),
        index_only_agreement=float(np.mean(np.concatenate(injected) == reference)),
        index_disagreement=tuple(float(d / len(inputs)) for d in differ),
    )
