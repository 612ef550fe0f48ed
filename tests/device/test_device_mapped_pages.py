"""release_file_pages on real mappings: resident pages go, contents and model outputs stay the same."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

from segnet_edge.device.backends.base import BackendOptions, load_backend
from segnet_edge.device.backends.litert import interpreter_class
from segnet_edge.device.backends.mapped_pages import (
    Release,
    file_mappings,
    release_file_pages,
    resident_bytes,
)
from segnet_edge.device.preprocess import preprocess, quantize

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux's")
SIZE = 4 << 20


def _data_file(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("flags", [mmap.MAP_PRIVATE, mmap.MAP_SHARED], ids=["private", "shared"])
def test_read_only_mapping_drops_its_resident_pages_and_keeps_its_bytes(tmp_path, flags):
    path, data = _data_file(tmp_path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    try:
        assert bytes(mapped) == data  # every page read: resident
        mappings = file_mappings(path)
        assert len(mappings) == 1 and mappings[0].size == SIZE
        assert resident_bytes(mappings) == SIZE

        released = release_file_pages(path)

        assert released == Release(mappings=1, mapped_bytes=SIZE, resident_bytes=SIZE)
        assert resident_bytes(mappings) == 0
        assert bytes(mapped) == data  # read back from the file
    finally:
        mapped.close()


def test_writable_mapping_and_its_changes_are_left_alone(tmp_path):
    path, data = _data_file(tmp_path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        mapped[:4] = b"edit"  # a private copy of the first page, which MADV_DONTNEED would lose
        assert release_file_pages(path) == Release()
        assert mapped[:4] == b"edit" and mapped[4:] == data[4:]
    finally:
        mapped.close()


def test_absent_unmapped_and_non_file_paths_release_nothing(tmp_path):
    path, _ = _data_file(tmp_path)
    assert release_file_pages(path) == Release()  # a file, not mapped
    assert release_file_pages(tmp_path / "missing.tflite") == Release()
    assert release_file_pages(tmp_path) == Release()  # a folder
    assert release_file_pages("/dev/null") == Release()


def test_litert_outputs_are_identical_after_its_model_pages_are_released(artifacts):
    model = artifacts / "model_int8.tflite"
    interpreter_cls, _ = interpreter_class()
    interpreter = interpreter_cls(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    detail, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    with load_backend(model, options=BackendOptions(threads=1)) as backend:
        meta = backend.metadata
        frames = np.random.default_rng(0).integers(0, 256, size=(3, 60, 80, 3), dtype=np.uint8)
        inputs = [quantize(preprocess(f, meta.input_size, meta.normalization), meta.input_quantization)[None]
                  for f in frames]

        def run(x):
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(output["index"]).copy()

        before = [run(x) for x in inputs]
        released = release_file_pages(model)
        assert released.error is None and released.mappings >= 1  # LiteRT maps the file read-only
        assert resident_bytes(file_mappings(model)) < released.resident_bytes or released.resident_bytes == 0
        after = [run(x) for x in inputs]
        # The backend released its own mapping on activation: same outputs as the interpreter.
        assert backend.released_bytes > 0
        served = [backend.infer(x) for x in inputs]
    for a, b, c in zip(before, after, served):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
