"""`python -m tools.reliability` (`make reliability`): the full reliability run and its one table.

It builds what a user would have after `make demo` (a synthetic dataset, a trained
tiny SegNet, a calibration set, TFLite fp32/int8 and ONNX artifacts, all through the
real CLI), then damages, kills, starves and attacks them (see the package
docstring) and prints the table. Exit code 0 only when every must-be-zero count is
zero and every unsafe model was refused. `--short` runs the counts `make test` uses.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tools.reliability.plan import Plan
from tools.reliability.tally import Tally


def _step(name: str) -> None:
    print(f"[reliability] {name}", file=sys.stderr, flush=True)


def run(plan: Plan, workdir: Path) -> Tally:
    from tools.reliability import fuzz, inputs, kills, streams
    from tools.reliability.fuzz import FuzzTarget

    tally = Tally()
    size = plan.input_size
    data = workdir / "data"
    _step("building a dataset, a model, a calibration set and artifacts with the real CLI")
    _require(kills.run_cli(["synth", data, "--count", plan.synth_count, "--size", plan.size_text, "--seed", plan.seed]))
    reference = workdir / "reference"
    _require(kills.run_cli(["train", *plan.train_args, "--data", data, "--epochs", 1, "--out", reference]))
    model = reference / "best.h5"
    calib = workdir / "calib.npz"
    _require(kills.run_cli(["calibrate", "--source", data, "--size", plan.size_text, "--count", plan.calib_count,
                            "--holdout", 2, "--out", calib]))
    export = workdir / "export"
    _require(kills.run_cli(["convert", model, "--calib", calib, "--formats", "tflite-fp32", "tflite-int8",
                            "onnx-fp32", "--out", export]), ok=(0, 1))  # 1: an untrained model misses parity

    _step(f"fuzzing ({plan.total_fuzz_cases} cases)")
    fuzz_dir = workdir / "fuzz"
    fuzz_dir.mkdir()
    tally.merge(fuzz.fuzz([
        FuzzTarget(export / "model_int8.tflite", plan.fuzz_tflite_int8, "model_int8.tflite"),
        FuzzTarget(export / "model_fp32.tflite", plan.fuzz_tflite_fp32, "model_fp32.tflite"),
        FuzzTarget(export / "model.onnx", plan.fuzz_onnx, "model.onnx"),
        FuzzTarget(model, plan.fuzz_h5, "best.h5"),
        FuzzTarget(calib, plan.fuzz_npz, "calib.npz"),
    ], plan.seed, fuzz_dir))

    _step(f"killing commands ({plan.total_kills} planned SIGKILLs)")
    kill_dir = workdir / "kills"
    kill_dir.mkdir()
    tally.merge(kills.kill_train([*plan.train_args, "--data", str(data)], plan.train_epochs, plan.kills_train,
                                 plan.seed, kill_dir))
    targets = [kills.KillTarget("calibrate", ["calibrate", "--source", str(data), "--size", plan.size_text,
                                              "--count", str(plan.calib_count), "--holdout", "2", "--force",
                                              "--out", str(kill_dir / "calibrate" / "calib.npz")],
                                kill_dir / "calibrate", plan.kills_calibrate)]
    if plan.kills_prune:
        targets.append(kills.KillTarget("prune", ["prune", str(model), "--data", str(data), "--epochs", "1",
                                                  "--batch-size", "4", "--quiet", "--out",
                                                  str(kill_dir / "prune" / "pruned.h5")],
                                        kill_dir / "prune", plan.kills_prune, max_writes=2))
    if plan.kills_quantize:
        targets.append(kills.KillTarget("quantize", ["quantize", str(model), "--data", str(data), "--qat",
                                                     "--epochs", "1", "--batch-size", "4", "--quiet", "--out",
                                                     str(kill_dir / "quantize" / "qat.h5")],
                                        kill_dir / "quantize", plan.kills_quantize, max_writes=2))
    if plan.kills_convert:
        out = kill_dir / "convert" / "export"
        targets.append(kills.KillTarget("convert", ["convert", str(model), "--calib", str(calib), "--formats",
                                                    "tflite-fp32", "tflite-int8", "onnx-fp32", "--out", str(out)],
                                        out, plan.kills_convert, ok_codes=(0, 1), watch=out.parent, max_writes=4))
    for n, target in enumerate(targets):
        tally.merge(kills.kill_command(target, plan.seed + n + 1, kill_dir))
    if plan.kills_convert:
        tally.notes["convert staging folders left after the final run (killed runs' are removed)"] = kills.stale_staging(
            kill_dir / "convert")

    _step("bad datasets, a broken video, unwritable outputs")
    inputs_dir = workdir / "inputs"
    inputs_dir.mkdir()
    tally.merge(inputs.bad_datasets(data, inputs_dir, size, [*plan.train_args, "--epochs", "1"]))
    if plan.cli_skip_run:
        tally.merge(inputs.skip_run(data, inputs_dir, [*plan.train_args, "--epochs", "1"]))
    tally.merge(inputs.broken_video(inputs_dir, export / "model_int8.tflite", size))
    tally.merge(inputs.full_disk(inputs_dir, data, export / "model_int8.tflite", size,
                                 keras_model=model if plan.full_disk_evaluate else None))
    if plan.file_size_limit:
        tally.merge(inputs.file_size_limit(inputs_dir, [*plan.train_args, "--epochs", "1"], data))

    _step("unsafe model files")
    models = inputs.make_unsafe_models(workdir / "unsafe")
    tally.merge(inputs.unsafe_loads(models, plan.unsafe_cli_runs(data, calib, workdir / "unsafe-out"), data))

    _step("stalling, dying and silent live sources")
    tally.merge(streams.live_sources(export / "model_int8.tflite", workdir))
    return tally


def _require(result, ok: tuple[int, ...] = (0,)) -> None:
    if result.returncode not in ok:
        lines = result.stderr.strip().splitlines() or [""]
        raise SystemExit(f"reliability: setup step `segnet-edge {' '.join(result.args[3:5])}` failed: {lines[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short counts `make test` runs")
    parser.add_argument("--seed", type=int, default=0, help="the same seed replays the same cases (default 0)")
    parser.add_argument("--work", type=Path, help="keep the work folder here (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    plan = (Plan.short() if args.short else Plan.full()).with_seed(args.seed)
    workdir = args.work or Path(tempfile.mkdtemp(prefix="segnet-edge-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        tally = run(plan, workdir)
    finally:
        if args.work is None:
            shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    print(tally.table(f"segnet-edge reliability ({plan.name} form, seed {plan.seed}, {minutes:.1f} min)"))
    return 0 if tally.passed else 1


if __name__ == "__main__":
    sys.exit(main())
