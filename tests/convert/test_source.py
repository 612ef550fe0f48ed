"""The policy a model's kind decides (convert/source.py), read off the source without TensorFlow.

The end-to-end conversions (test_convert_qat.py, tests/optimize/test_quantize.py) prove each branch
produces the artifacts it should; this pins the table itself: which int8 formats need a calibration
set, where their ranges come from, and which artifacts are proven against a QAT model's float twin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segnet_edge.convert.options import ConvertOptions
from segnet_edge.convert.registry import FORMATS
from segnet_edge.convert.source import CALIBRATED, FLOAT_TWIN_NOTE, LEARNT, FloatSource, QatSource
from segnet_edge.device.metadata import ModelMetadata, default_palette
from segnet_edge.model_io import StoredModel

META = ModelMetadata(("a", "b", "c"), default_palette(3), (32, 48), arch="segnet")


def _source(layer_class: str, symmetric: bool = False):
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": layer_class, "config": {"name": "conv"}}]}}
    stored = StoredModel(Path("model.h5"), META, config, qat_symmetric=symmetric)
    kind = QatSource if stored.qat else FloatSource
    return kind(stored, META, ConvertOptions(), lambda message: None)


def _needing_calibration(source) -> set[str]:
    return {fmt.name for fmt in FORMATS.values() if source.needs_calibration(fmt)}


INT8 = {name for name, fmt in FORMATS.items() if fmt.is_int8}


@pytest.mark.parametrize("layer_class, symmetric, needing", [
    ("Conv2D", False, INT8),  # a float model: every int8 format is calibrated here
    ("QuantizeWrapperV2", True, set()),  # symmetric QAT: every int8 format takes the learnt ranges
    ("QuantizeWrapperV2", False, INT8 - {"tflite-int8"}),  # asymmetric: TFLite only; TensorRT needs zero point 0
])
def test_which_int8_formats_need_a_calibration_set(layer_class, symmetric, needing):
    source = _source(layer_class, symmetric)
    assert source.qat == (layer_class != "Conv2D")
    assert _needing_calibration(source) == needing
    for name in INT8:
        assert source.int8_ranges(FORMATS[name]) == (CALIBRATED if name in needing else LEARNT)


def test_float_artifacts_of_a_qat_model_are_noted_and_int8_ones_keep_the_models_reference():
    qat, plain = _source("QuantizeWrapperV2", True), _source("Conv2D")
    reference = np.zeros((1, 2, 2, 3), np.float32)
    for fmt in FORMATS.values():
        assert plain.report_notes(fmt) == []
        assert plain.parity_reference(fmt, reference, reference) is reference
        assert qat.report_notes(fmt) == ([] if fmt.is_int8 else [FLOAT_TWIN_NOTE])
        if fmt.is_int8:
            assert qat.parity_reference(fmt, reference, reference) is reference
    assert "QAT" in qat.calibration_hint and "QAT" in plain.calibration_hint
    assert qat.recalibration_note and plain.recalibration_note is None
