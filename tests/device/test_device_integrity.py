"""The payload digest on the board: a flipped weight byte is refused before the first frame, in one line.

The damage used here is the kind that ran silently before the digest existed: one bit
in the middle of the largest weight tensor, which every structural check accepts.
`--no-verify` proves it: the same file then streams (wrong masks, nothing said).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from device_util import assert_one_line_error, profile_no_tf, run_no_tf

from segnet_edge.device import integrity
from segnet_edge.device.artifact_check import check_artifact
from segnet_edge.device.artifact_metadata import read_artifact_metadata, sidecar_path, sidecar_text
from segnet_edge.device.backends.base import BackendOptions, load_backend
from segnet_edge.device.backends.tflite_file import MODEL, FlatBuffer
from segnet_edge.device.errors import IntegrityError, ModelFileError

ARTIFACTS = ("model_fp32.tflite", "model_int8.tflite", "model.onnx")


def _weight_offset(path) -> int:
    """A byte in the middle of the artifact's largest constant tensor."""
    data = path.read_bytes()
    if path.suffix == ".tflite":
        walker = FlatBuffer(data)
        vectors = [walker.vector(b, 0, 1, "data") for b in walker.tables(walker.root(), MODEL["buffers"], "buffers")]
        start, length = max(vectors, key=lambda v: v[1])
        return start + length // 2
    import onnx

    raw = max((t.raw_data for t in onnx.load(str(path)).graph.initializer), key=len)
    assert data.count(raw) == 1
    return data.find(raw) + len(raw) // 2


def _flipped(source, folder, offset: int | None = None):
    """A copy of `source` (same name, in `folder`) with one bit flipped in a weight (or at `offset`)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / source.name
    data = bytearray(source.read_bytes())
    data[_weight_offset(source) if offset is None else offset] ^= 0x04
    copy.write_bytes(bytes(data))
    return copy


def _stream(model, out, *flags):
    return run_no_tf("-m", model, "--source", "synthetic", "--frames", "2", "--warmup", "0", "--no-plot",
                     "--jsonl", "none", "--out", out, *flags)


@pytest.mark.parametrize("name", ARTIFACTS)
def test_a_flipped_weight_byte_is_refused_in_one_line_and_streams_nothing(artifacts, tmp_path, name):
    damaged = _flipped(artifacts / name, tmp_path / "damaged")
    out = tmp_path / "out"
    line = assert_one_line_error(_stream(damaged, out), str(damaged), "damaged", "SHA-256", "copy it again",
                                 "segnet-edge convert")
    assert line.startswith("run_camera: error: ")
    assert not out.exists()  # nothing streamed, no report
    unverified = _stream(damaged, out, "--no-verify")  # the damage is where only the digest sees it
    assert unverified.returncode == 0, unverified.stderr
    assert json.loads((out / "profile.json").read_text())["config"]["options"]["verify"] is False


def test_the_digest_is_the_sha256_of_the_file_with_its_own_field_zeroed(artifacts):
    """The format, stated so that any tool can check a file: sha256sum after writing 64 zeros over the digest."""
    for name in ARTIFACTS:
        data = (artifacts / name).read_bytes()
        digest = read_artifact_metadata(artifacts / name).payload_sha256
        assert digest and len(digest) == 64
        blanked = data.replace(f'"payload_sha256": "{digest}"'.encode(), b'"payload_sha256": "' + b"0" * 64 + b'"')
        assert blanked != data and hashlib.sha256(blanked).hexdigest() == digest


def _unsealed(source, folder, old_schema: bool):
    """The artifact as a writer without the digest would have made it, byte lengths unchanged (JSON spaces):
    schema 2 with the field null (e.g. an engine sidecar written before the engine), or schema 1 (no field)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    digest = read_artifact_metadata(source).payload_sha256
    field = f'"payload_sha256": "{digest}"'.encode()
    if old_schema:
        field += b", "
        assert data.count(field) == 1 and data.count(b'"schema_version": 2') == 1
        data = data.replace(field, b" " * len(field)).replace(b'"schema_version": 2', b'"schema_version": 1')
    else:
        data = data.replace(field, b'"payload_sha256": null'.ljust(len(field)))
    copy = folder / source.name
    copy.write_bytes(data)
    return copy


def test_a_model_without_a_digest_runs_with_a_one_line_warning(artifacts, tmp_path, capsys):
    old = _unsealed(artifacts / "model_int8.tflite", tmp_path / "old", old_schema=True)
    result = _stream(old, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and str(old) in warnings[0] and "no integrity digest" in warnings[0], result.stderr
    unsealed = _unsealed(artifacts / "model.onnx", tmp_path / "null", old_schema=False)
    assert read_artifact_metadata(unsealed).payload_sha256 is None
    check_artifact(unsealed)
    check_artifact(unsealed)  # once per file per process
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {unsealed}: no integrity digest"), err
    quiet = _unsealed(artifacts / "model_fp32.tflite", tmp_path / "quiet", old_schema=True)
    check_artifact(quiet, verify=False)  # --no-verify: no check, no warning
    assert capsys.readouterr().err == ""


def test_damage_to_the_digest_field_itself_is_refused(artifacts, tmp_path):
    source = artifacts / "model_int8.tflite"
    data = source.read_bytes()
    key = data.find(b'"payload_sha256"')
    renamed = _flipped(source, tmp_path / "key", offset=key + 3)  # the field's name: reads as no field at all
    with pytest.raises(ModelFileError, match="payload_sha256 field is missing"):
        check_artifact(renamed)
    value = _flipped(source, tmp_path / "value", offset=key + len('"payload_sha256": "') + 10)
    with pytest.raises(IntegrityError):
        check_artifact(value)


def _fake_engine(artifacts, folder):
    """Engine bytes no GPU made (the check needs none) and the sidecar convert writes for a built engine."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = folder / "model.engine"
    engine.write_bytes(bytes(range(256)) * 64)
    sidecar_path(engine).write_text(sidecar_text(read_artifact_metadata(artifacts / "model.onnx"),
                                                 engine.read_bytes()))
    return engine


def test_an_engine_is_verified_with_its_sidecar_before_tensorrt_is_imported(artifacts, tmp_path):
    engine = _fake_engine(artifacts, tmp_path / "good")
    assert check_artifact(engine).payload_sha256
    assert load_backend(engine).name == "tensorrt"  # verified; activating it is the hardware call
    flipped = _fake_engine(artifacts, tmp_path / "flipped")
    _flipped(flipped, tmp_path / "flipped", offset=1000)
    with pytest.raises(IntegrityError, match=r"model.engine \(with model.engine.json\): damaged"):
        check_artifact(flipped)
    edited = _fake_engine(artifacts, tmp_path / "edited")  # a class renamed in the sidecar: same damage
    sidecar = sidecar_path(edited)
    sidecar.write_text(sidecar.read_text().replace('"sky"', '"sk7"'))
    with pytest.raises(IntegrityError):
        check_artifact(edited)
    assert load_backend(flipped, options=BackendOptions(verify=False)).name == "tensorrt"
    # through the board's script, on a machine with or without TensorRT: refused before any runtime
    assert_one_line_error(_stream(flipped, tmp_path / "out"), str(flipped), "damaged")
    assert not (tmp_path / "out").exists()


def test_auto_and_profile_refuse_a_damaged_candidate(artifacts, tmp_path):
    """--backend auto stops on a damaged file (it is not "cannot run here"); profile has --no-verify too."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(artifacts / "model_int8.tflite", folder)
    damaged = _flipped(artifacts / "model.onnx", folder)
    out = tmp_path / "auto"
    assert_one_line_error(_stream(folder, out, "--backend", "auto"), str(damaged), "damaged")
    assert not out.exists()
    profiled = tmp_path / "profile"
    args = ["--frames", "2", "--warmup", "0", "--no-plot", "--out", profiled]
    line = assert_one_line_error(profile_no_tf(damaged, *args), str(damaged), "damaged")
    assert line.startswith("segnet-edge profile: error: ") and not profiled.exists()
    assert profile_no_tf(damaged, *args, "--no-verify").returncode == 0


def test_field_bytes_match_what_the_metadata_writes():
    from segnet_edge.device.metadata import ModelMetadata

    meta = ModelMetadata(("a",), ((1, 2, 3),), (8, 8), payload_sha256=integrity.PLACEHOLDER)
    assert meta.dumps().encode().count(integrity.field_bytes(integrity.PLACEHOLDER)) == 1
    with pytest.raises(ValueError, match="expected one payload_sha256 placeholder"):
        integrity.seal([b"no field here"])


def test_the_bench_row_reports_the_check_with_and_without_verification(artifacts, tmp_path):
    """bench/integrity.py (make bench runs it on the full-size int8 file): the numbers it reports, not their size."""
    from bench.integrity import markdown, verification_cost

    cost = verification_cost(artifacts / "model_int8.tflite", repeats=1)
    assert cost["size_mb"] == pytest.approx((artifacts / "model_int8.tflite").stat().st_size / 1e6)
    assert cost["check_ms"] > 0 and cost["check_no_verify_ms"] > 0 and cost["sha256_ms"] > 0
    assert "| model_int8.tflite |" in markdown(cost)
    old = _unsealed(artifacts / "model_int8.tflite", tmp_path, old_schema=True)
    with pytest.raises(ValueError, match="carries no payload digest"):
        verification_cost(old, repeats=1)
