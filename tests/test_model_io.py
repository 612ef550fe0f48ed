"""Model files: reload with no custom_objects, bit-identical, with metadata; safe loading; VGG16 init."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import segnet_edge
from segnet_edge._tf import keras
from segnet_edge.device.errors import ModelFileError, UsageError
from segnet_edge.device.metadata import CAMVID_CLASSES, CAMVID_PALETTE, ModelMetadata
from segnet_edge.model_io import load_model, read_metadata, read_stored, save_model
from segnet_edge.models import ModelConfig, build_model
from segnet_edge.vgg_init import load_vgg16_encoder


@pytest.fixture(scope="module")
def small_model():
    return build_model(ModelConfig("segnet", (45, 60), 11, alpha=0.125))


META = ModelMetadata(CAMVID_CLASSES, CAMVID_PALETTE, (45, 60), ignore_label=11, alpha=0.125)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_reload_gives_bit_identical_predictions_without_custom_objects(tmp_path, small_model, suffix):
    x = np.random.default_rng(0).standard_normal((2, 45, 60, 3)).astype(np.float32)
    path = save_model(small_model, tmp_path / f"m{suffix}", META)
    reloaded = segnet_edge.load_model(path)
    np.testing.assert_array_equal(reloaded(x).numpy(), small_model(x).numpy())
    assert replace(read_metadata(path), payload_sha256=None) == META  # as given, plus the digest of the file
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # no temporary files left
    stored = read_stored(path)  # what convert reads once, and hands to load_model
    assert stored.metadata == read_metadata(path) and stored.config is not None
    assert not stored.qat and not stored.qat_symmetric and stored.input_lrn is None
    np.testing.assert_array_equal(load_model(path, stored=stored)(x).numpy(), small_model(x).numpy())


def test_files_that_are_not_segnet_edge_models_are_refused(tmp_path):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.h5")
    with pytest.raises(ModelFileError, match="not a segnet-edge model"):
        segnet_edge.load_model(tmp_path / "plain.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelFileError, match="unreadable"):
        segnet_edge.load_model(tmp_path / "junk.h5")
    with pytest.raises(ModelFileError, match="no such model file"):
        segnet_edge.load_model(tmp_path / "missing.h5")
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelFileError, match="not a Keras model file"):
        segnet_edge.load_model(tmp_path / "model.txt")


def test_a_lambda_layer_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    inputs = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2)(inputs)
    model = keras.Model(inputs, out)
    path = save_model(model, tmp_path / "evil.h5", META)
    # Make the Lambda's code create a file if it ever runs: replace its marshalled function.
    import json

    import h5py

    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                code = compile(f"open({str(marker)!r}, 'w').write('x')", "<evil>", "exec")
                import base64
                import marshal

                layer["config"]["function"] = {"class_name": "__lambda__", "config": {
                    "code": base64.b64encode(marshal.dumps(code)).decode(), "defaults": None, "closure": None}}
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match="Lambda"):
        segnet_edge.load_model(path)
    assert not marker.exists()


def _vgg16_weights(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.h5"
    vgg.save_weights(path)
    return vgg, path


def test_encoder_initialises_from_a_local_vgg16_weights_file(tmp_path):
    vgg, path = _vgg16_weights(tmp_path)
    model = build_model(ModelConfig("segnet", (64, 64), 3))
    assert load_vgg16_encoder(model, path, freeze=True) == 13
    for name in ("block1_conv1", "block3_conv2", "block5_conv3"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), vgg.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
        assert not model.get_layer(name).trainable and not model.get_layer(f"{name}_bn").trainable
    assert model.get_layer("block5_conv3_D").trainable


def test_vgg16_file_errors_are_clear(tmp_path):
    _, path = _vgg16_weights(tmp_path)
    with pytest.raises(UsageError, match="no such VGG16 weights file"):
        load_vgg16_encoder(build_model(ModelConfig("segnet", (32, 32), 3)), tmp_path / "nope.h5")
    with pytest.raises(UsageError, match="alpha 1.0"):
        load_vgg16_encoder(build_model(ModelConfig("segnet", (32, 32), 3, alpha=0.5)), path)
    with pytest.raises(UsageError, match="--arch segnet"):
        load_vgg16_encoder(build_model(ModelConfig("segnet-basic", (32, 32), 3)), path)
    (tmp_path / "bad.h5").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="not an HDF5"):
        load_vgg16_encoder(build_model(ModelConfig("segnet", (32, 32), 3)), tmp_path / "bad.h5")


def _config(*layers):
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(layers)}}


def _layer(class_name, name="x", **config):
    return {"class_name": class_name, "config": {"name": name, **config}}


@pytest.mark.parametrize("config, needle", [
    # a Lambda anywhere a layer can hide: a wrapper's inner model, a Bidirectional's backward layer
    (_config(_layer("TimeDistributed", layer={"class_name": "Sequential", "config": {"name": "s", "layers": [
        _layer("Lambda", "hidden")]}})), "layer 'hidden' is a Lambda"),
    (_config(_layer("Bidirectional", layer=_layer("LSTM", "f"), backward_layer=_layer("Lambda", "b"))),
     "layer 'b' is a Lambda"),
    # Python code under another class name, a module outside Keras, classes Keras does not have
    (_config(_layer("Dense", "d", function_type="lambda")), "Python function"),
    (_config(_layer("Conv2D", "c", kernel_initializer={"module": "os", "class_name": "system", "config": "id"})),
     "names module 'os'"),
    (_config(_layer("EvilLayer", "e")), "class 'EvilLayer'"),
    (_config(_layer("__class__", "dunder")), "class '__class__'"),
    (_config(_layer("QuantizeWrapperV2", "q", layer=_layer("Conv2D", "c"),
                    quantize_config={"class_name": "EvilConfig", "config": {}})), "quantization class 'EvilConfig'"),
])
def test_config_check_finds_code_wherever_it_hides(config, needle):
    from segnet_edge.model_io import check_config_safe

    with pytest.raises(ModelFileError, match="--unsafe-load") as info:
        check_config_safe(config, "evil.h5")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_config_check_accepts_keras_segnet_edge_and_tfmot_classes():
    from segnet_edge.model_io import check_config_safe

    check_config_safe(_config(
        _layer("InputLayer"), _layer("Conv2D", kernel_initializer={"module": "keras.initializers",
                                                                   "class_name": "HeNormal", "config": {}}),
        _layer("segnet_edge>MaxPoolingWithArgmax2D"),
        _layer("QuantizeWrapperV2", "q", layer=_layer("Conv2D", "c"),
               quantize_config={"class_name": "Default8BitConvQuantizeConfig", "config": {}})), "ok.h5")


# --- integrity: the digest save_model records, checked by load_model -------------------------------------


def _largest_weight(file) -> int:
    """The file offset of the middle of the largest array in an HDF5 file (a path or a file object)."""
    import h5py

    found = []
    with h5py.File(file, "r") as f:
        f.visititems(lambda name, item: found.append((item.nbytes, item.id.get_offset()))
                     if isinstance(item, h5py.Dataset) else None)
    nbytes, offset = max(found)
    return offset + nbytes // 2


def _damaged_keras_zip(path, out):
    """The .keras zip rewritten with one weight byte changed and valid CRCs: only the digest can tell."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = bytearray(src.read(info))
            if info.filename.endswith(".weights.h5"):
                data[_largest_weight(io.BytesIO(bytes(data)))] ^= 0x04
            dst.writestr(info, bytes(data))
    return out


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_flipped_weight_byte_in_a_keras_file_is_refused_and_no_verify_loads_it(tmp_path, small_model, suffix):
    from segnet_edge.device.errors import IntegrityError

    path = save_model(small_model, tmp_path / f"m{suffix}", META)
    assert read_metadata(path).payload_sha256
    damaged = tmp_path / f"damaged{suffix}"
    if suffix == ".h5":
        data = bytearray(path.read_bytes())
        data[_largest_weight(path)] ^= 0x04
        damaged.write_bytes(bytes(data))
    else:
        _damaged_keras_zip(path, damaged)
    with pytest.raises(IntegrityError) as info:
        segnet_edge.load_model(damaged)
    message = str(info.value)
    assert message.startswith(f"{damaged}: damaged") and "copy it again" in message and "\n" not in message
    unverified = segnet_edge.load_model(damaged, verify=False)  # the damage is in a weight, nowhere else
    changed = [i for i, (a, b) in enumerate(zip(unverified.get_weights(), small_model.get_weights()))
               if not np.array_equal(a, b)]
    assert len(changed) == 1


def test_a_keras_file_without_a_digest_loads_with_a_one_line_warning(tmp_path, small_model, capsys):
    import json

    import h5py

    from segnet_edge.device.metadata import METADATA_KEY

    path = save_model(small_model, tmp_path / "old.h5", META)
    with h5py.File(path, "a") as f:  # as an older segnet-edge wrote it: schema 1, no digest field
        old = json.loads(f.attrs[METADATA_KEY])
        del old["payload_sha256"]
        f.attrs[METADATA_KEY] = json.dumps({**old, "schema_version": 1})
    segnet_edge.load_model(path)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}: no integrity digest"), warnings


def test_evaluate_refuses_a_damaged_model_in_one_line(tmp_path, small_model, camvid_sample):
    from tests.conftest import assert_usage_error, run_cli

    path = save_model(small_model, tmp_path / "m.h5", META)
    data = bytearray(path.read_bytes())
    data[_largest_weight(path)] ^= 0x04
    path.write_bytes(bytes(data))
    assert_usage_error(run_cli("evaluate", path, "--data", camvid_sample, "--json", tmp_path / "e.json"),
                       str(path), "damaged", "copy it again")
    assert not (tmp_path / "e.json").exists()
