"""How tfmot quantizes segnet-edge's own layers: a QuantizeConfig per custom layer.

tfmot knows Keras' built-in layers only; `quantize_apply` refuses anything else, and its
wrapper cannot put an output quantizer on a layer that returns a list (the argmax
pooling returns [pooled, indices]). Each custom layer therefore gets a config here:

- MaxPoolingWithArgmax2D, MaxUnpooling2D: no weights, and no new quantizer on any
  output. Pooled values are a subset of the input values, and unpooled values are
  those values plus exact zeros, so both already sit on the input's int8 grid; the
  TFLite converter gives REDUCE_MAX / SELECT_V2 / DEPTH_TO_SPACE the input's scale.
  A second quantizer could only move the scale and add rounding. The indices are
  int32 positions 0..3 and are never quantized.
- LocalResponseNormalization: divides by a data-dependent norm, so its output has a
  range of its own: one moving-average output quantizer (TFLite's LRN kernel is float,
  so the converter brackets it with DEQUANTIZE / QUANTIZE at exactly this range).

This module imports tfmot; load it only after `segnet_edge._tf` (which selects Keras 2).
"""

from __future__ import annotations

import contextlib

from segnet_edge._tf import keras
from segnet_edge.layers import (
    CUSTOM_OBJECTS,
    LocalResponseNormalization,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
)
from segnet_edge.optimize._tfmot import tfmot

_qk = tfmot.quantization.keras


@keras.utils.register_keras_serializable(package="segnet_edge")
class SameScaleQuantizeConfig(_qk.QuantizeConfig):
    """No weights, no activation, no output quantizer: outputs keep the input's scale (indices stay int32)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        if quantize_weights:
            raise ValueError(f"{layer.name}: has no weights to quantize")

    def set_quantize_activations(self, layer, quantize_activations):
        if quantize_activations:
            raise ValueError(f"{layer.name}: has no activation to quantize")

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


@keras.utils.register_keras_serializable(package="segnet_edge")
class OutputQuantizeConfig(SameScaleQuantizeConfig):
    """One 8-bit moving-average quantizer on the (single) output: for layers that change the value range."""

    def get_output_quantizers(self, layer):
        return [_qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]


#: custom layer class -> the QuantizeConfig class that annotates it.
LAYER_QUANTIZE_CONFIGS: dict[type, type] = {
    MaxPoolingWithArgmax2D: SameScaleQuantizeConfig,
    MaxUnpooling2D: SameScaleQuantizeConfig,
    LocalResponseNormalization: OutputQuantizeConfig,
}

#: Everything a QAT segnet-edge model file needs beyond tfmot's own classes.
QUANTIZE_CUSTOM_OBJECTS = {
    **CUSTOM_OBJECTS,
    "SameScaleQuantizeConfig": SameScaleQuantizeConfig,
    "OutputQuantizeConfig": OutputQuantizeConfig,
    "segnet_edge>SameScaleQuantizeConfig": SameScaleQuantizeConfig,
    "segnet_edge>OutputQuantizeConfig": OutputQuantizeConfig,
}


def quantize_config_for(layer) -> _qk.QuantizeConfig | None:
    """The config for one of segnet-edge's layers; None for Keras' built-ins (tfmot's registry has those)."""
    for cls, config in LAYER_QUANTIZE_CONFIGS.items():
        if isinstance(layer, cls):
            return config()
    return None


def quantize_scope() -> contextlib.AbstractContextManager:
    """tfmot's deserialisation scope plus segnet-edge's layers and configs: for building and loading QAT models."""
    return _qk.quantize_scope(QUANTIZE_CUSTOM_OBJECTS)
