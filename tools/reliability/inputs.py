"""Broken datasets and videos, outputs that cannot be written, and model files that would run code.

- Datasets: one bad sample of each kind (unreadable or truncated image, unreadable
  label, wrong-size label, out-of-range label values, a listed file that is
  missing). `--on-bad-sample fail` (the default) must stop with one line naming
  the file; `skip` must count it and say what it skipped.
- A video with broken frames: the board streams it to the end (skipping what
  cannot be decoded) and `calibrate` either uses it or names the file.
- `/dev/full` as an output (ENOSPC), and a file-size limit (EFBIG) while training:
  one line, no temporary file left, earlier outputs intact.
- Model files with a Lambda (top level, or nested in a wrapper), a foreign class
  or a foreign module: refused before any code in them runs (`unsafe loads blocked`).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tools.reliability.kills import cli_env, is_temporary, run_cli
from tools.reliability.tally import Tally

RUN_CAMERA = Path(__file__).resolve().parents[2] / "device" / "run_camera.py"


def one_line_error(result: subprocess.CompletedProcess, tally: Tally, context: str, *needles: str) -> bool:
    """Exit 2 with one error line, last on stderr, naming every needle; anything else is counted."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode < 0:
        tally.fail("signal_deaths", f"{context}: signal {-result.returncode}")
    elif "Traceback (most recent call last)" in result.stderr:
        tally.fail("tracebacks", f"{context}: {lines[-1] if lines else ''}")
    elif result.returncode != 2:
        tally.fail("unexpected", f"{context}: exit {result.returncode} (expected 2): {lines[-1:] or ''}")
    elif len([line for line in lines if ": error: " in line]) != 1 or ": error: " not in lines[-1]:
        tally.fail("not_one_line", f"{context}: {' | '.join(lines[-3:])}")
    elif missing := [n for n in needles if n not in lines[-1]]:
        tally.fail("unexpected", f"{context}: the error does not name {missing}: {lines[-1]}")
    else:
        return True
    return False


def run_camera(*args: str | Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_CAMERA), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout_s, env=cli_env())


# --- datasets ------------------------------------------------------------------------------------------


def _add_sample(dataset: Path, kind: str) -> Path:
    """Append one bad training sample of `kind` to a CamVid-layout dataset; returns the file to blame."""
    import cv2

    images, labels = dataset / "train", dataset / "trainannot"
    good_image = sorted(images.glob("*.png"))[0]
    good_label = labels / good_image.name
    name = f"bad_{kind.replace(' ', '_')}.png"
    image, label = images / name, labels / name
    shutil.copy(good_image, image)
    shutil.copy(good_label, label)
    blamed = image
    if kind == "unreadable image":
        image.write_bytes(b"this is not an image" * 10)
    elif kind == "truncated image":
        data = good_image.read_bytes()
        image.write_bytes(data[: len(data) // 3])
    elif kind == "unreadable label":
        label.write_bytes(b"\x00garbage" * 20)
        blamed = label
    elif kind == "wrong-size label":
        grey = cv2.imread(str(good_label), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(label), cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2),
                                           interpolation=cv2.INTER_NEAREST))
        blamed = label
    elif kind == "label values out of range":
        grey = cv2.imread(str(good_label), cv2.IMREAD_UNCHANGED)
        grey[: grey.shape[0] // 2] = 200
        cv2.imwrite(str(label), grey)
        blamed = label
    elif kind == "missing image file":
        image.unlink()
    else:
        raise ValueError(kind)
    with open(dataset / "train.txt", "a", encoding="utf-8") as f:
        f.write(f"train/{name} trainannot/{name}\n")
    return blamed


#: Bad samples `--on-bad-sample` decides about. A file the list names but the disk lacks is a broken
#: dataset rather than a bad sample: it stops the run whatever the policy (checked separately).
DATASET_KINDS = ("unreadable image", "truncated image", "unreadable label", "wrong-size label",
                 "label values out of range")


def bad_datasets(clean: Path, workdir: Path, input_size: tuple[int, int], cli_train: list[str] | None = None) -> Tally:
    """Each bad-sample kind through the loader (fail and skip), plus `cli_train` (a `segnet-edge train` argv
    without --data/--out/--on-bad-sample) once with `fail` and, when given, once with `skip` on all kinds."""
    from segnet_edge.data.layout import find_samples, load_class_info
    from segnet_edge.data.loader import load_samples
    from segnet_edge.device.errors import DataError

    tally = Tally()
    info = load_class_info(clean)
    for kind in DATASET_KINDS:
        dataset = workdir / f"ds-{kind.replace(' ', '-')}"
        shutil.rmtree(dataset, ignore_errors=True)
        shutil.copytree(clean, dataset)
        blamed = _add_sample(dataset, kind)
        samples = find_samples(dataset, "train")
        tally.tried[f"dataset: {kind}"] += 1
        try:
            load_samples(samples, input_size, info, "fail")
            tally.fail("unexpected", f"dataset {kind}: --on-bad-sample fail loaded it")
        except DataError as exc:
            if blamed.name not in str(exc) or "\n" in str(exc):
                tally.fail("not_one_line", f"dataset {kind}: the error does not name {blamed.name}: {exc}")
        split = load_samples(samples, input_size, info, "skip")
        if len(split.skipped) != 1 or blamed.name not in split.skipped[0] or len(split) != len(samples) - 1:
            tally.fail("unexpected", f"dataset {kind}: skip kept {len(split)} of {len(samples)}, "
                                     f"skipped {split.skipped}")
    dataset = workdir / "ds-missing-file"
    shutil.rmtree(dataset, ignore_errors=True)
    shutil.copytree(clean, dataset)
    missing = _add_sample(dataset, "missing image file")
    tally.tried["dataset: listed image missing"] += 1
    try:
        find_samples(dataset, "train")
        tally.fail("unexpected", "dataset with a missing file: listed without an error")
    except DataError as exc:
        if missing.name not in str(exc) or "\n" in str(exc):
            tally.fail("not_one_line", f"dataset with a missing file: {exc}")
    if cli_train is None:
        return tally
    everything = workdir / "ds-all-bad"
    shutil.rmtree(everything, ignore_errors=True)
    shutil.copytree(clean, everything)
    first = [_add_sample(everything, kind) for kind in DATASET_KINDS][0]
    result = run_cli(["train", *cli_train, "--data", everything, "--out", workdir / "bad-fail"])
    tally.tried["dataset: all kinds, CLI --on-bad-sample fail"] += 1
    one_line_error(result, tally, "train on a bad dataset", first.name)
    if any((workdir / "bad-fail").glob("*.h5")):
        tally.fail("unexpected", "train on a bad dataset wrote a model although it had to stop")
    return tally


def skip_run(clean: Path, workdir: Path, cli_train: list[str]) -> Tally:
    """`train --on-bad-sample skip` on a dataset with every bad kind: trains, names each skipped file."""
    tally = Tally()
    dataset = workdir / "ds-all-bad"
    if not dataset.is_dir():
        shutil.copytree(clean, dataset)
        for kind in DATASET_KINDS:
            _add_sample(dataset, kind)
    result = run_cli(["train", *cli_train, "--data", dataset, "--out", workdir / "bad-skip", "--on-bad-sample", "skip"])
    tally.tried["dataset: all kinds, CLI --on-bad-sample skip"] += 1
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    if result.returncode != 0 or len(skipped) != len(DATASET_KINDS):
        tally.fail("unexpected", f"train --on-bad-sample skip: exit {result.returncode}, {len(skipped)} skipped "
                                 f"lines for {len(DATASET_KINDS)} bad samples: {result.stderr.strip()[-300:]}")
    return tally


def broken_video(workdir: Path, model: Path, size: tuple[int, int]) -> Tally:
    """An MJPG video with scribbled-over frames: the board streams to the end, calibrate names the file or copes."""
    import cv2

    tally = Tally()
    video = workdir / "broken.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    rng = np.random.default_rng(0)
    for i in range(24):
        frame = np.full((64, 96, 3), (i * 9) % 255, np.uint8)
        frame[16:48, (i * 3) % 60:(i * 3) % 60 + 30] = rng.integers(0, 255, 3, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    for start in starts[3::4]:  # every fourth frame: scribble over its entropy-coded data
        for j in range(start + 600, min(start + 900, len(data))):
            data[j] = rng.integers(0, 256)
    video.write_bytes(bytes(data))
    tally.tried["video with broken frames"] += 2
    out = workdir / "broken-video-report"
    result = run_camera("-m", model, "--source", video, "--warmup", "0", "--no-plot", "--out", out)
    if result.returncode != 0 or not (out / "profile.json").is_file():
        one_line_error(result, tally, "run_camera on a video with broken frames")
    calib = run_cli(["calibrate", "--source", video, "--size", f"{size[0]}x{size[1]}", "--count", "8",
                     "--holdout", "0", "--out", workdir / "video-calib.npz"])
    if calib.returncode != 0:
        one_line_error(calib, tally, "calibrate from a video with broken frames", video.name)
    return tally


# --- writes that fail -----------------------------------------------------------------------------------


def _dev_temporaries() -> set[str]:
    return {p.name for p in Path("/dev").iterdir() if is_temporary(p)}


def full_disk(workdir: Path, dataset: Path, model: Path, size: tuple[int, int],
              keras_model: Path | None = None) -> Tally:
    """Outputs on /dev/full (ENOSPC): one line naming it, and never a temporary file left in /dev."""
    tally = Tally()
    if not os.path.exists("/dev/full"):
        return tally
    before = _dev_temporaries()
    runs: list[tuple[str, Callable[[], subprocess.CompletedProcess]]] = [
        ("calibrate --out /dev/full", lambda: run_cli(["calibrate", "--source", dataset, "--size",
                                                        f"{size[0]}x{size[1]}", "--count", "4", "--holdout", "0",
                                                        "--out", "/dev/full"])),
        ("run_camera --jsonl /dev/full", lambda: run_camera("-m", model, "--source", "synthetic", "--frames", "3",
                                                            "--warmup", "0", "--no-plot", "--jsonl", "/dev/full",
                                                            "--out", workdir / "full-report")),
        ("run_camera --save-masks on a file", lambda: run_camera("-m", model, "--source", "synthetic", "--frames", "2",
                                                                 "--no-plot", "--save-masks", "/dev/full/masks",
                                                                 "--out", workdir / "full-report-2")),
    ]
    if keras_model is not None:
        runs.append(("evaluate --json /dev/full", lambda: run_cli(["evaluate", keras_model, "--data", dataset,
                                                                   "--split", "val", "--json", "/dev/full"])))
    for name, run in runs:
        tally.tried[f"unwritable output: {name}"] += 1
        one_line_error(run(), tally, name, "/dev/full")
    left = _dev_temporaries() - before
    if left:
        tally.fail("temps_left", f"/dev: {sorted(left)}")
    return tally


def file_size_limit(workdir: Path, cli_train: list[str], dataset: Path, limit_bytes: int = 64 * 1024) -> Tally:
    """Training whose checkpoint write hits RLIMIT_FSIZE (EFBIG, as a full disk would): one line, no temporaries."""
    tally = Tally()
    out = workdir / "efbig"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal, as ENOSPC would be
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    tally.tried["unwritable output: train checkpoint over RLIMIT_FSIZE"] += 1
    result = subprocess.run([sys.executable, "-m", "segnet_edge.cli", "train", *cli_train, "--data", str(dataset),
                             "--out", str(out)], capture_output=True, text=True, timeout=900, env=cli_env(),
                            preexec_fn=limit)
    if one_line_error(result, tally, "train with a file-size limit", "cannot write"):
        left = [p.name for p in out.iterdir() if is_temporary(p)] if out.is_dir() else []
        if left:
            tally.fail("temps_left", f"train with a file-size limit: {left}")
        for path in out.glob("*.h5"):
            tally.fail("partial_files", f"train with a file-size limit: {path.name} exists")
    return tally


# --- model files that would run code ----------------------------------------------------------------------


def make_unsafe_models(folder: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (model file, marker file its code would create). Needs TensorFlow (host side)."""
    from segnet_edge._tf import keras
    from segnet_edge.device.metadata import ModelMetadata, Normalization, default_palette
    from segnet_edge.model_io import save_model

    folder.mkdir(parents=True, exist_ok=True)
    meta = ModelMetadata(class_names=("a", "b"), palette=default_palette(2), input_size=(8, 8),
                         normalization=Normalization())
    made: dict[str, tuple[Path, Path]] = {}

    def payload(name: str):
        marker = folder / f"pwned-{name}"
        return marker, (lambda t, _m=str(marker): (open(_m, "w").close(), t)[1])  # noqa: SIM115

    marker, code = payload("lambda")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(keras.layers.Lambda(code)(inputs))))
    made["Lambda layer"] = (save_model(model, folder / "lambda.h5", meta), marker)

    marker, code = payload("nested")
    inputs = keras.Input((8, 8, 3))
    inner = keras.Sequential([keras.Input((8, 3)), keras.layers.Lambda(code)])
    x = keras.layers.TimeDistributed(inner)(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(x)))
    made["Lambda nested in TimeDistributed(Sequential)"] = (save_model(model, folder / "nested.h5", meta), marker)

    marker, code = payload("keras")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(keras.layers.Lambda(code)(inputs))))
    made["Lambda in a .keras file"] = (save_model(model, folder / "lambda.keras", meta), marker)

    for name, edit in (("foreign class", _rename_first_conv), ("foreign module", _foreign_module)):
        path = folder / f"{name.replace(' ', '-')}.h5"
        marker = folder / f"pwned-{name.replace(' ', '-')}"
        inputs = keras.Input((8, 8, 3))
        save_model(keras.Model(inputs, keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(inputs))), path, meta)
        _edit_config(path, lambda config, _e=edit, _m=marker: _e(config, _m))
        made[name] = (path, marker)
    for _, marker in made.values():
        marker.unlink(missing_ok=True)  # building the models ran the lambdas once
    return made


def _edit_config(path: Path, edit: Callable[[dict], None]) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)


def _rename_first_conv(config: dict, marker: Path) -> None:
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Conv2D":
            layer["class_name"] = "EvilLayer"
            return


def _foreign_module(config: dict, marker: Path) -> None:
    """An initializer that names os.system: a loader importing modules by name would run the command."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Conv2D":
            layer["config"]["kernel_initializer"] = {"module": "os", "class_name": "system",
                                                     "config": f"touch {marker}", "registered_name": "system"}
            return


def unsafe_loads(models: dict[str, tuple[Path, Path]], cli_runs: list[tuple[str, list[str]]],
                 data: Path) -> Tally:
    """Every model through segnet_edge.load_model, and the Lambda ones through each `cli_runs` command
    (name, argv with MODEL standing for the file). Blocked = one-line refusal and the marker never appears."""
    from segnet_edge.device.errors import ModelFileError
    from segnet_edge.model_io import load_model

    tally = Tally()
    for name, (path, marker) in models.items():
        tally.unsafe_tried += 1
        tally.tried[f"unsafe model: {name} (load_model)"] += 1
        try:
            load_model(path)
            tally.problems.append(f"unsafe load not blocked: load_model({path.name}) ran")
        except ModelFileError as exc:
            if marker.exists():
                tally.problems.append(f"unsafe load not blocked: {name}: code ran before the refusal")
            elif "\n" in str(exc):
                tally.fail("not_one_line", f"load_model({path.name}): {exc}")
            else:
                tally.unsafe_blocked += 1
    lambdas = [(n, p, m) for n, (p, m) in models.items() if "Lambda" in n and p.suffix == ".h5"]
    for command, argv in cli_runs:
        for name, path, marker in lambdas:
            tally.unsafe_tried += 1
            tally.tried[f"unsafe model: {name} (segnet-edge {command})"] += 1
            result = run_cli([str(path) if a == "MODEL" else a for a in argv])
            if one_line_error(result, tally, f"segnet-edge {command} {path.name}", "Lambda", "--unsafe-load"):
                if marker.exists():
                    tally.problems.append(f"unsafe load not blocked: {command} {path.name}: code ran")
                else:
                    tally.unsafe_blocked += 1
    return tally
