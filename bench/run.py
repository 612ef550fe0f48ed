"""`make bench`: every runtime a user could run SegNet on, against Keras and against this CPU's limit.

    python bench/run.py [--full-size 352x480] [--full-rounds 4] [--demo-rounds 30] [--work DIR] ...

One run, batch 1, the same frames for every row:

1. prepare (in a child process, so its memory is gone before timing starts): a full-size SegNet
   (random weights unless --full-model) and the demo model (trained here on synthetic scenes unless
   given or `make demo` has run), each converted by `segnet-edge convert`'s own code to TFLite
   fp32/fp16/int8 and ONNX fp32/QDQ int8; the full-size network also with plain max pooling + nearest
   upsampling (the pooling-design table) and with the class argmax inside the model;
2. time them: one worker process per row (bench/measure.py), interleaved rounds so background load
   hits every row alike; Keras rows run `model(x, training=False)`, artifacts run through the board's
   backends (segnet_edge.device.backends);
3. where the time goes: per-op profiles of the full-size int8 and fp32 artifacts (bench/opprofile.py);
   what verifying the full-size int8 file's payload digest adds to a load (bench/integrity.py);
   the board budget: each full-size int8 artifact streamed by a fresh `device/run_camera.py` (bench/budget.py:
   peak / steady RSS, FPS against inference, pre+post share, soak slope);
4. write docs/benchmarks.md, bench/results.json and the README's three-line summary, with the machine,
   this CPU's computed peak, a Jetson Orin projection from published peaks, and the issue's goals.

Numbers on a shared machine are noisy: the ratios are the point, and they come from one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout; also what the spawned workers import from

from bench.artifacts import CAMVID_SAMPLE, FORMATS, LABELS, SAME_RUNTIME, runtime_and_precision  # noqa: E402
from bench.report import (  # noqa: E402
    CONFIDENT_MARGIN,
    GOAL_INT8_AGREEMENT,
    GOAL_INT8_SPEEDUP,
    GOAL_POOLING_OVERHEAD,
    Goal,
    PoolingRow,
    Results,
    TableRow,
    paired_ratio,
)

OUT_DIR = REPO / "bench"
#: Full-size timed rounds when the budget decides, and the seconds kept for what follows them
#: (demo rows ~1 min, per-op profiles ~1.5 min, the rest a few seconds).
MIN_FULL_ROUNDS, MAX_FULL_ROUNDS, RESERVE_S = 3, 8, 200
#: Seconds of streaming each board-budget artifact gets (frames = this / its median inference, at least
#: BUDGET_MIN_FRAMES, at most --budget-frames), and what the four of them add to RESERVE_S.
BUDGET_ROW_S, BUDGET_MIN_FRAMES, BUDGET_RESERVE_S = 75, 40, 360
#: What the pruning section takes on the demo model (3 fine-tunes, 4 int8 conversions, 20 timed rounds).
PRUNING_RESERVE_S = 300
README = REPO / "README.md"
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


@dataclass
class Settings:
    full_size: tuple[int, int] = (352, 480)  # 11 x 32: no ceil-mode padding; the baseline size (104 GMAC)
    full_alpha: float = 1.0
    full_model: str | None = None  # a trained segnet-edge model; default: random weights
    full_data: str = str(CAMVID_SAMPLE)  # calibration (train split) and timing frames (val split)
    full_frames: int = 4
    full_rounds: int | None = None  # None: as many as the time budget allows, between 3 and 8
    demo_model: str | None = None
    demo_data: str | None = None
    demo_frames: int = 16
    demo_rounds: int = 30
    demo_epochs: int = 30  # make demo's, when the bench trains its own demo model
    calib_frames: int = 4  # full-size int8 calibration frames (each costs ~10 s in TFLite's calibrator)
    demo_calib_frames: int = 32
    threads: tuple[int, ...] = (1, 2)
    pooling: bool = True
    labels_output: bool = True
    profile: bool = True
    autoselect: bool = True
    streaming: bool = True  # bench/streaming.py: memory flat in the frames, streamed vs in-memory steps/s
    budget: bool = True  # the board-budget table: full-size int8 artifacts through run_camera.py, one process each
    budget_frames: int = 200
    pruning: bool = True  # the pruning section (bench/pruning.py) on the demo model
    pruning_epochs: int = 2
    jetson_efficiency: float = 0.30
    fma_units: int | None = None
    work: str | None = None
    out_dir: str = str(OUT_DIR)
    readme: bool = True
    reuse: bool = False  # reuse --work's prepared models and artifacts (prepare.json) instead of rebuilding
    budget_min: float = 18.0  # `make bench` must finish within 20 minutes: full-size rounds fill what is left

    def to_json(self) -> dict:
        return asdict(self)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def parse_args(argv: list[str] | None) -> Settings:
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full-size", type=_size, default=d.full_size, metavar="HxW")
    p.add_argument("--full-alpha", type=float, default=d.full_alpha)
    p.add_argument("--full-model", help="trained full-size model (default: random weights)")
    p.add_argument("--full-data", default=d.full_data, help="labelled dataset: train split calibrates, val split times")
    p.add_argument("--full-frames", type=int, default=d.full_frames)
    p.add_argument("--full-rounds", type=int, default=d.full_rounds,
                   help="timed rounds per full-size row (default: what --budget-min leaves, 3 to 8)")
    p.add_argument("--budget-min", type=float, default=d.budget_min, help="whole-run time budget in minutes")
    p.add_argument("--demo-model", help="demo model (default: demo_out's, else train one here)")
    p.add_argument("--demo-data", help="dataset with a test split for the demo model")
    p.add_argument("--demo-frames", type=int, default=d.demo_frames)
    p.add_argument("--demo-rounds", type=int, default=d.demo_rounds)
    p.add_argument("--demo-epochs", type=int, default=d.demo_epochs,
                   help="epochs when no make demo model exists and the bench trains one (make demo's recipe)")
    p.add_argument("--calib-frames", type=int, default=d.calib_frames)
    p.add_argument("--threads", default=",".join(map(str, d.threads)), help="thread counts, comma separated")
    p.add_argument("--no-pooling", action="store_true", help="skip the pooling-design rows")
    p.add_argument("--no-labels-output", action="store_true", help="skip the argmax-in-model artifact")
    p.add_argument("--no-profile", action="store_true", help="skip the per-op profiles")
    p.add_argument("--no-autoselect", action="store_true")
    p.add_argument("--no-streaming", action="store_true", help="skip the streamed-input memory and speed rows")
    p.add_argument("--no-budget", action="store_true", help="skip the board-budget table (bench/budget.py)")
    p.add_argument("--budget-frames", type=int, default=d.budget_frames,
                   help="frames per board-budget run (its soak slope is extrapolated to 5,000)")
    p.add_argument("--no-pruning", action="store_true", help="skip the pruning section (dense vs channels vs 2:4)")
    p.add_argument("--pruning-epochs", type=int, default=d.pruning_epochs,
                   help="fine-tuning epochs of each pruned variant in the pruning section")
    p.add_argument("--jetson-efficiency", type=float, default=d.jetson_efficiency)
    p.add_argument("--fma-units", type=int, help="FMA units per core for the peak (default: 2)")
    p.add_argument("--work", help="keep models and artifacts here (default: a temporary folder)")
    p.add_argument("--out-dir", default=d.out_dir, help="where results.json goes (the report: docs/benchmarks.md)")
    p.add_argument("--no-readme", action="store_true", help="do not update README.md")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the models and artifacts a previous run left in --work (re-time only)")
    a = p.parse_args(argv)
    return Settings(full_size=a.full_size, full_alpha=a.full_alpha, full_model=a.full_model, full_data=a.full_data,
                    full_frames=a.full_frames, full_rounds=a.full_rounds, demo_model=a.demo_model,
                    demo_data=a.demo_data, demo_frames=a.demo_frames, demo_rounds=a.demo_rounds,
                    demo_epochs=a.demo_epochs, calib_frames=a.calib_frames,
                    threads=tuple(int(t) for t in a.threads.split(",")), pooling=not a.no_pooling,
                    labels_output=not a.no_labels_output, profile=not a.no_profile, autoselect=not a.no_autoselect,
                    streaming=not a.no_streaming,
                    budget=not a.no_budget, budget_frames=a.budget_frames,
                    pruning=not a.no_pruning, pruning_epochs=a.pruning_epochs,
                    jetson_efficiency=a.jetson_efficiency, fma_units=a.fma_units, work=a.work, out_dir=a.out_dir,
                    readme=not a.no_readme, reuse=a.reuse, budget_min=a.budget_min)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- 1. prepare (child process) ----------------------------------------------------------------


def prepare(settings: Settings, work: str) -> dict:
    """Models, frames and artifacts; returns paths and facts (JSON-able). Runs in a child process.

    With --reuse, the parts a previous run left in --work (prepare_full.json, prepare_demo.json) are
    reused; delete one to rebuild that part."""
    work_dir = Path(work)
    out: dict = {"timings_s": {}}
    full_stamp, demo_stamp = work_dir / "prepare_full.json", work_dir / "prepare_demo.json"
    if settings.reuse and full_stamp.is_file() and demo_stamp.is_file():
        _log(f"reusing {full_stamp} and {demo_stamp}")
        return {"timings_s": {}, "full": json.loads(full_stamp.read_text()), "demo": json.loads(demo_stamp.read_text())}
    if settings.reuse and full_stamp.is_file():
        _log(f"reusing {full_stamp}")
        out["full"] = json.loads(full_stamp.read_text())
    else:
        _prepare_full(settings, work_dir, out)
        full_stamp.write_text(json.dumps(out["full"], indent=2, default=float))
    _prepare_demo(settings, work_dir, out)
    demo_stamp.write_text(json.dumps(out["demo"], indent=2, default=float))
    return out


def _timed(out: dict, name: str, started: float) -> None:
    out["timings_s"][name] = time.perf_counter() - started
    _log(f"{name}: {out['timings_s'][name]:.0f} s")


def _prepare_full(settings: Settings, work_dir: Path, out: dict) -> None:
    import numpy as np

    from bench.artifacts import calibration_set, convert_all, export_variant, full_size_model, load_frames
    from bench.variants import index_memory, with_pooling
    from segnet_edge.model_io import load_model, read_metadata
    from segnet_edge.models import count_macs

    def timed(name: str, started: float) -> None:
        _timed(out, name, started)

    # Full-size SegNet.
    started = time.perf_counter()
    size = tuple(settings.full_size)
    full = Path(settings.full_model) if settings.full_model else full_size_model(work_dir, size, settings.full_alpha)
    meta = read_metadata(full)
    model = load_model(full)
    if tuple(model.input_shape[1:3]) != size:
        raise SystemExit(f"bench: {full} takes {model.input_shape[1:3]}, not --full-size {size}")
    frames = load_frames(settings.full_data, "val", size, settings.full_frames)
    np.save(work_dir / "full_frames.npy", frames.inputs)
    np.save(work_dir / "full_labels.npy", frames.labels)
    calib = calibration_set(settings.full_data, size, settings.calib_frames)
    from bench.pruning import channel_pruned_macs

    out["full"] = {"model": str(full), "trained": bool(settings.full_model), "macs": count_macs(model),
                   "macs_channels_50": channel_pruned_macs(model, 0.5),
                   "index_memory": index_memory(model).to_json(), "num_classes": meta.num_classes,
                   "ignore_label": meta.ignore_label, "frames_source": frames.source, "size_bytes": full.stat().st_size,
                   "input_size": list(size), "alpha": meta.alpha, "calib_frames": len(calib)}
    report = convert_all(full, work_dir / "full_export", calib, _log)
    out["full"]["artifacts"] = _artifacts(report)
    timed("convert full-size", started)
    if settings.pooling:
        started = time.perf_counter()
        _log("plain max pooling + nearest upsampling variant")
        plain = export_variant(with_pooling(model, "plain"), meta, "plain", work_dir / "full_plain", calib, FORMATS,
                               _log)
        out["full"]["plain"] = {name: {"path": str(p), "size_bytes": p.stat().st_size} for name, p in plain.items()}
        timed("convert full-size plain variant", started)
    if settings.labels_output:
        started = time.perf_counter()
        report = convert_all(full, work_dir / "full_labels", calib, _log, formats=("tflite-int8",), output="labels")
        out["full"]["labels"] = _artifacts(report)
        timed("convert full-size labels output", started)


def _prepare_demo(settings: Settings, work_dir: Path, out: dict) -> None:
    import numpy as np

    from bench.artifacts import calibration_set, convert_all, demo_model, load_frames
    from segnet_edge.model_io import load_model, read_metadata
    from segnet_edge.models import count_macs

    def timed(name: str, started: float) -> None:
        _timed(out, name, started)

    started = time.perf_counter()
    demo, data = demo_model(work_dir, settings.demo_model, settings.demo_data, _log, epochs=settings.demo_epochs)
    demo_meta = read_metadata(demo)
    dsize = tuple(demo_meta.input_size)
    frames = load_frames(data, "test", dsize, settings.demo_frames)
    np.save(work_dir / "demo_frames.npy", frames.inputs)
    np.save(work_dir / "demo_labels.npy", frames.labels)
    calib = calibration_set(data, dsize, settings.demo_calib_frames)
    out["demo"] = {"model": str(demo), "trained": True, "macs": count_macs(load_model(demo)),
                   "num_classes": demo_meta.num_classes, "ignore_label": demo_meta.ignore_label,
                   "frames_source": frames.source, "data": str(data), "size_bytes": demo.stat().st_size,
                   "input_size": list(dsize),
                   "alpha": demo_meta.alpha, "calib_frames": len(calib)}
    timed("demo model", started)
    started = time.perf_counter()
    out["demo"]["artifacts"] = _artifacts(convert_all(demo, work_dir / "demo_export", calib, _log))
    if settings.labels_output:
        out["demo"]["labels"] = _artifacts(convert_all(demo, work_dir / "demo_labels", calib, _log,
                                                       formats=("tflite-int8",), output="labels"))
    timed("convert demo", started)


def _artifacts(report) -> dict:
    found = {}
    for a in report.artifacts:
        if a.file:
            found[a.format] = {"path": str(Path(report.out_dir) / a.file), "size_bytes": a.size_bytes,
                               "checks": [c.to_json() for c in a.checks], "unpool_mode": a.unpool_mode}
        else:
            found[a.format] = {"skipped": a.skipped}
    return found


# --- 2. rows and timing ------------------------------------------------------------------------


def _specs(group: str, facts: dict, settings: Settings):
    from bench.measure import RowSpec

    specs = []
    for threads in settings.threads:
        specs.append(RowSpec(f"{group}/keras/{threads}", group, "Keras (TensorFlow)", "keras", "fp32", threads,
                             facts["model"]))
        for name in FORMATS:
            artifact = facts["artifacts"].get(name, {})
            if "path" in artifact:
                specs.append(RowSpec(f"{group}/{name}/{threads}", group, LABELS[name], *runtime_and_precision(name),
                                     threads, artifact["path"]))
    extra_threads = max(settings.threads)
    for name, artifact in facts.get("labels", {}).items():
        if "path" in artifact:
            specs.append(RowSpec(f"{group}/{name}+labels/{extra_threads}", group, LABELS[name] + ", argmax in model",
                                 *runtime_and_precision(name), extra_threads, artifact["path"]))
    if group == "full" and "plain" in facts:
        specs.append(RowSpec(f"{group}/keras-plain/{extra_threads}", group, "Keras, plain pool + upsample", "keras",
                             "fp32", extra_threads, facts["model"], pooling="plain"))
        specs.append(RowSpec(f"{group}/keras-tf-argmax/{extra_threads}", group,
                             "Keras, tf.nn.max_pool_with_argmax + scatter", "keras", "fp32", extra_threads,
                             facts["model"], pooling="tf-argmax"))
        for name, artifact in facts["plain"].items():
            specs.append(RowSpec(f"{group}/{name}-plain/{extra_threads}", group, LABELS[name] + ", plain pool + upsample",
                                 *runtime_and_precision(name), extra_threads, artifact["path"], pooling="plain"))
    return specs


def _measure(group: str, facts: dict, settings: Settings, work: Path, rounds, warmup: int):
    import numpy as np

    from bench.measure import WorkerPool

    specs = _specs(group, facts, settings)
    frames = np.load(work / f"{group}_frames.npy")
    planned = rounds if isinstance(rounds, int) else "budgeted"
    _log(f"{group}: starting {len(specs)} workers ({len(frames)} frames; {warmup} warm-up + {planned} timed rounds)")
    started = time.perf_counter()

    def progress(r: int, seconds: float, total: int | None) -> None:
        _log(f"{group}: round {r + 1}/{total or '?'} ({'warm-up' if r < warmup else 'timed'}) {seconds:.1f} s")

    with WorkerPool(specs, frames, work, _log) as pool:
        pool.measure(rounds, warmup, progress)
    _log(f"{group}: measured in {time.perf_counter() - started:.0f} s")
    return pool.results


def _rows(group: str, facts: dict, results: dict, work: Path, peaks: dict[str, float]) -> list[TableRow]:
    import numpy as np

    from bench.report import CONFIDENT_MARGIN, agreement, confident_share, derive, miou

    truth = np.load(work / f"{group}_labels.npy", allow_pickle=True)
    truth = None if truth.dtype == object else truth
    sizes = {facts["model"]: facts["size_bytes"]}
    for key in ("artifacts", "labels", "plain"):
        for artifact in facts.get(key, {}).values():
            if "path" in artifact:
                sizes[artifact["path"]] = artifact["size_bytes"]
    reference = next((r for k, r in results.items() if r.spec.runtime == "keras" and r.spec.pooling == "argmax"
                      and r.labels), None)
    rows = []
    for result in results.values():
        spec, stats = result.spec, result.stats() or {}
        row = TableRow(group, spec.label, spec.runtime, spec.precision, spec.threads, spec.pooling,
                       stats.get("mean_ms"), stats.get("median_ms"), stats.get("p90_ms"), stats.get("min_ms"),
                       stats.get("fps"),
                       stats.get("n", 0), result.peak_rss_mb, sizes.get(spec.path), error=result.error,
                       latencies_ms=[1000.0 * t for t in result.latencies_s])
        # a random-weight model's class scores are near ties everywhere: its agreement figures mislead, so only a
        # trained model's are shown (the demo model is the accuracy evidence otherwise)
        if facts.get("trained") and reference is not None and spec.pooling == "argmax":
            row.agreement = agreement(reference.labels, result.labels)
            if reference.margins:
                row.confident_agreement = agreement(reference.labels, result.labels, reference.margins,
                                                    CONFIDENT_MARGIN)
        if facts.get("trained") and spec.pooling == "argmax":
            row.miou = miou(result.labels, truth, facts["num_classes"], facts["ignore_label"])
        rows.append(row)
    keras_rows = {(r.group, r.threads): r for r in rows if r.runtime == "keras" and r.pooling == "argmax"}
    derive(rows, keras_rows, {group: facts["macs"]}, peaks)
    if reference is not None:
        facts["confident_share"] = confident_share(reference.margins, CONFIDENT_MARGIN)
        facts["median_margin"] = (float(np.median(np.concatenate([m.ravel() for m in reference.margins.values()])))
                                  if reference.margins else None)
    return rows


# --- 3. extras ---------------------------------------------------------------------------------


def _profiles(facts: dict, threads: int) -> list:
    from bench.opprofile import ort_profile, tflite_profile

    profiles = []
    for name in ("tflite-int8", "onnx-int8", "ort-int8", "tflite-fp32", "onnx-fp32"):
        artifact = facts["artifacts"].get(name, {})
        if "path" not in artifact:
            continue
        started = time.perf_counter()
        run = tflite_profile if name.startswith("tflite") else ort_profile
        profiles.append(run(artifact["path"], threads, runs=2))
        _log(f"profile {name}: {time.perf_counter() - started:.0f} s")
    return profiles


def _postprocess_saving(facts: dict, rows: list[TableRow], work: Path, threads: int) -> dict | None:
    """Postprocess time on the board for the probabilities artifact vs the label-map one (same format)."""
    import numpy as np

    from segnet_edge.device.backends.base import BackendOptions, load_backend

    labels = facts.get("labels", {}).get("tflite-int8", {})
    probs = facts["artifacts"].get("tflite-int8", {})
    if "path" not in labels or "path" not in probs:
        return None
    x = np.load(work / "full_frames.npy")[:1]
    timings = {}
    for kind, path in (("probabilities", probs["path"]), ("labels", labels["path"])):
        with load_backend(path, None, BackendOptions(threads=threads)) as backend:
            raw = backend.infer(backend.quantize_input(x))
        frame_size = tuple(backend.metadata.input_size)
        backend.to_segmentation(raw, frame_size)  # a warm-up call; it needs no runtime, so the backend is closed
        times = []
        for _ in range(20):
            started = time.perf_counter()
            backend.to_segmentation(raw, frame_size)
            times.append(time.perf_counter() - started)
        timings[kind] = {"postprocess_ms": 1000 * float(np.median(times)), "output_bytes": int(raw.nbytes),
                         "output_shape": list(raw.shape), "output_dtype": str(raw.dtype)}
    inference = {r.label: r.median_ms for r in rows
                 if r.threads == threads and r.group == "full" and r.label.startswith("TFLite int8")}
    timings["probabilities"]["inference_ms"] = inference.get("TFLite int8")
    timings["labels"]["inference_ms"] = inference.get("TFLite int8, argmax in model")
    saved = timings["probabilities"]["postprocess_ms"] - timings["labels"]["postprocess_ms"]
    timings["postprocess_saved_ms"] = saved
    if timings["probabilities"]["inference_ms"] and timings["labels"]["inference_ms"]:
        timings["total_saved_ms"] = saved + timings["probabilities"]["inference_ms"] - timings["labels"]["inference_ms"]
    return timings


def _autoselect(facts: dict, threads: int) -> dict | None:
    from segnet_edge.device.autoselect import choose
    from segnet_edge.device.backends.base import BackendOptions

    folder = Path(next(a["path"] for a in facts["artifacts"].values() if "path" in a)).parent
    choice = choose([folder], BackendOptions(threads=threads), log=_log)
    return {"folder": str(folder), **choice.to_json(), "table": choice.table()}


def _integrity(facts: dict) -> dict | None:
    """What the payload digest check adds to loading the full-size int8 TFLite file (bench/integrity.py)."""
    from bench.integrity import verification_cost

    artifact = facts["artifacts"].get("tflite-int8", {})
    if "path" not in artifact:
        return None
    try:
        return verification_cost(artifact["path"])
    except ValueError as exc:  # --reuse of artifacts converted before they carried a digest
        _log(f"integrity: skipped ({exc})")
        return None


def _pruning(demo: dict, settings: Settings, work: str) -> dict:
    """bench/pruning.py's section on the demo model: dense vs channels 30% / 50% vs 2:4 (child process)."""
    from bench.pruning import pruning_section

    folder = Path(work) / "pruning"
    folder.mkdir(parents=True, exist_ok=True)
    data = Path(demo["data"])
    rows, text = pruning_section(Path(demo["model"]), data, folder, epochs=settings.pruning_epochs)
    return {"rows": [r.to_json() for r in rows], "markdown": text}


# --- 4. report ---------------------------------------------------------------------------------


def _streaming(work: Path):
    """bench/streaming.py's rows: train/evaluate peak RSS on N and 8N frames, streamed vs in-memory steps/s."""
    from bench.streaming import StreamingSettings, measure

    _log("streamed input: peak RSS on N and 8N frames, steps/s streamed vs in memory")
    return measure(StreamingSettings(), work / "streaming")


def _budget(full: dict, rows: list[TableRow], settings: Settings, threads: int, work: Path):
    """(board-budget rows, most frames per run) for the full-size int8 artifacts (bench/budget.py); each streams
    for about BUDGET_ROW_S at the median inference the timed rows measured."""
    from bench.budget import measure

    wanted = {"TFLite int8": ("tflite-int8", full["artifacts"].get("tflite-int8")),
              "TFLite int8, argmax in model": ("tflite-int8", full.get("labels", {}).get("tflite-int8")),
              "ORT QDQ uint8, MaxUnpool": ("ort-int8", full["artifacts"].get("ort-int8")),
              "ORT QDQ int8": ("onnx-int8", full["artifacts"].get("onnx-int8"))}
    models = {label: Path(a["path"]) for label, (_, a) in wanted.items() if a and a.get("path")}
    medians = {r.label: r.median_ms for r in rows if r.group == "full" and r.threads == threads
               and r.pooling == "argmax" and r.median_ms}
    frames_for = {}
    for label, (fmt, _) in wanted.items():
        median = medians.get(LABELS[fmt])
        if median:
            frames_for[label] = max(BUDGET_MIN_FRAMES, int(1000 * BUDGET_ROW_S / median))
    return (measure(models, settings.budget_frames, 10, threads, work / "budget", _log, frames_for),
            settings.budget_frames)


def _machine(peak) -> dict:
    from bench.hardware import read_cpu_info

    info = read_cpu_info()
    return {"cpu": info.model_name, "cores": info.cores, "mhz": info.mhz, "arch": info.arch,
            "flags": info.to_json()["flags"], "python": platform.python_version(),
            "host": platform.node(), "peak": peak.to_json(), "versions": _versions()}


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for dist in ("tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "tf2onnx", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def _pooling_rows(rows: list[TableRow], threads: int) -> list[PoolingRow]:
    def find(label: str) -> TableRow | None:
        return next((r for r in rows if r.label == label and r.threads == threads and r.group == "full"), None)

    def median(row: TableRow | None) -> float | None:  # the median, as every ratio in the run
        return row.median_ms if row else None

    def pooling_row(runtime: str, ours: str, plain: str, tf_argmax: str | None = None, **extra) -> PoolingRow:
        a, b, c = find(ours), find(plain), find(tf_argmax) if tf_argmax else None
        return PoolingRow(runtime, median(a), median(b), median(c),
                          paired_ratio=paired_ratio(a.latencies_ms, b.latencies_ms) if a and b else None, **extra)

    table = [pooling_row("Keras (TensorFlow)", "Keras (TensorFlow)", "Keras, plain pool + upsample",
                         "Keras, tf.nn.max_pool_with_argmax + scatter")]
    for name in FORMATS:
        table.append(pooling_row(LABELS[name], LABELS[name], LABELS[name] + ", plain pool + upsample",
                                 note="needs Flex ops: TF 2.21's TFLite interpreter cannot run it"
                                 if name.startswith("tflite") else "no ONNX export without Flex (MaxPoolWithArgmax)",
                                 runtime_group=LABELS[SAME_RUNTIME.get(name, name)]))
    return table


def best_per_runtime(pooling: list[PoolingRow]) -> list[PoolingRow]:
    """Each runtime and precision's lowest-overhead graph form: what a user of that runtime gets."""
    best: dict[str, PoolingRow] = {}
    for row in pooling:
        if row.overhead is not None and (row.group not in best or row.overhead < best[row.group].overhead):
            best[row.group] = row
    return list(best.values())


def _goals(rows: list[TableRow], pooling: list[PoolingRow], facts: dict, auto: dict | None,
           saving: dict | None, threads: int) -> list[Goal]:
    goals = []
    full = [r for r in rows if r.group == "full" and r.pooling == "argmax" and r.mean_ms and "argmax in" not in r.label]
    int8 = [r for r in full if r.precision == "int8" and r.speedup]
    if int8:
        best = max(int8, key=lambda r: r.speedup)
        demo_same = next((r for r in rows if r.group == "demo" and r.label == best.label and r.threads == best.threads),
                         None)
        trained = facts["full"].get("trained")
        source = best if trained else demo_same
        acc = source.confident_agreement if source else None
        where = "full-size model" if trained else "same format on the trained demo model (the full-size one has random weights)"
        met = best.speedup >= GOAL_INT8_SPEEDUP and acc is not None and acc >= GOAL_INT8_AGREEMENT
        detail = f"{best.label} at {best.threads} thread(s): {best.median_ms:.0f} ms (median), {best.speedup:.2f}×"
        if acc is not None:
            group = facts["full" if trained else "demo"]
            detail += (f"; agreement {100 * acc:.2f}% on the {100 * (group.get('confident_share') or 0):.0f}% of "
                       f"pixels where Keras' top-2 margin is ≥ {CONFIDENT_MARGIN:g} of the {where}")
            if source.agreement is not None:
                detail += f" ({100 * source.agreement:.2f}% of all pixels: the rest sit on near ties)"
        goals.append(Goal(f"fastest int8 artifact ≥ {GOAL_INT8_SPEEDUP:g}× Keras on the full-size SegNet with argmax "
                          f"agreement ≥ {GOAL_INT8_AGREEMENT:.1%} on the confident pixels (convert's int8 target)",
                          met, detail))
    measured = best_per_runtime(pooling)
    if measured:
        worst = max(measured, key=lambda p: p.overhead)
        goals.append(Goal(f"argmax pool + unpool ≤ {GOAL_POOLING_OVERHEAD:.0%} over plain pool + nearest upsample in "
                          "every runtime (its fastest graph form)", all(p.within_goal for p in measured),
                          ", ".join(f"{p.runtime} {100 * p.overhead:+.1f}%" for p in measured)
                          + f" (worst: {worst.runtime})"))
    keras = next((p for p in pooling if p.vs_tf_argmax is not None), None)
    if keras is not None:
        goals.append(Goal("faster than tf.nn.max_pool_with_argmax + scatter in Keras", keras.vs_tf_argmax > 1.0,
                          f"{keras.argmax_ms:.0f} ms vs {keras.tf_argmax_ms:.0f} ms ({keras.vs_tf_argmax:.2f}×)"))
    if auto is not None:
        demo = [r for r in rows if r.group == "demo" and r.threads == threads and r.runtime != "keras"
                and r.mean_ms and "argmax in" not in r.label]
        fastest = min(demo, key=lambda r: r.median_ms) if demo else None
        chosen = Path(auto["chosen"]["path"]).name
        detail = f"on the demo artifacts it chose {chosen} ({auto['reason']})"
        if fastest is not None:
            detail += (f"; this run's fastest demo row at {threads} threads: {fastest.label} "
                       f"({fastest.median_ms:.2f} ms median)")
        goals.append(Goal("--backend auto picks the fastest artifact by measuring, and says why", True, detail))
    if saving is not None:
        p, q = saving["probabilities"], saving["labels"]
        detail = (f"device postprocess {p['postprocess_ms']:.2f} ms → {q['postprocess_ms']:.2f} ms per full-size frame "
                  f"(output {p['output_bytes'] / 1e6:.2f} MB → {q['output_bytes'] / 1e6:.2f} MB)")
        if "total_saved_ms" in saving:
            detail += (f"; inference (median) {p['inference_ms']:.0f} → {q['inference_ms']:.0f} ms (ARG_MAX + CAST "
                       f"replace SOFTMAX in the graph); net {saving['total_saved_ms']:+.1f} ms per frame (positive: saved)")
        goals.append(Goal("class argmax inside the model (convert --output labels) and the postprocess time it saves",
                          saving["postprocess_saved_ms"] > 0, detail))
    return goals


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    began = time.perf_counter()
    from bench.hardware import JETSON_SOURCES, cpu_peak, jetson_table, read_cpu_info

    peak = cpu_peak(read_cpu_info(), settings.fma_units)
    _log(f"CPU peak: {peak.assumption}")
    with tempfile.TemporaryDirectory(prefix="segnet_bench_") as scratch:
        work = Path(settings.work) if settings.work else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            facts = pool.submit(prepare, settings, str(work)).result()
        prepared = time.perf_counter()
        _log(f"prepared in {prepared - began:.0f} s")
        peaks = {"fp32": peak.fp32_gflops, "fp16": peak.fp32_gflops, "int8": peak.int8_gops}
        threads = max(settings.threads)
        rows: list[TableRow] = []
        deadline = (began + 60 * settings.budget_min - RESERVE_S - (BUDGET_RESERVE_S if settings.budget else 0)
                    - (PRUNING_RESERVE_S if settings.pruning else 0))

        def budgeted(round_s: float) -> int:
            fit = int((deadline - time.perf_counter()) / max(round_s, 1e-3))
            rounds = min(MAX_FULL_ROUNDS, max(MIN_FULL_ROUNDS, fit))
            _log(f"full: a round takes {round_s:.0f} s; {rounds} timed rounds fit the {settings.budget_min:g}-min "
                 f"budget" + ("" if fit >= MIN_FULL_ROUNDS else f" (only {fit} would: running the minimum)"))
            return rounds

        full_rounds = settings.full_rounds if settings.full_rounds else budgeted
        full_results = _measure("full", facts["full"], settings, work, full_rounds, 1)
        rows += _rows("full", facts["full"], full_results, work, peaks)
        demo_results = _measure("demo", facts["demo"], settings, work, settings.demo_rounds, 2)
        rows += _rows("demo", facts["demo"], demo_results, work, peaks)
        measured = time.perf_counter()
        profiles = _profiles(facts["full"], threads) if settings.profile else []
        saving = _postprocess_saving(facts["full"], rows, work, threads) if settings.labels_output else None
        auto = _autoselect(facts["demo"], threads) if settings.autoselect else None
        streaming = _streaming(work) if settings.streaming else None
        integrity = _integrity(facts["full"])
        budget = _budget(facts["full"], rows, settings, threads, work) if settings.budget else None
        if settings.pruning:  # in a child process, as prepare: its TensorFlow memory goes with it
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                facts["pruning"] = pool.submit(_pruning, facts["demo"], settings, str(work)).result()
        extras = time.perf_counter()
    pooling = _pooling_rows(rows, threads) if settings.pooling else []
    results = _results(settings, peak, facts, rows, pooling, profiles, saving, auto, jetson_table, JETSON_SOURCES,
                       threads, {"prepare_s": prepared - began, "measure_s": measured - prepared,
                                 "extras_s": extras - measured, "total_s": time.perf_counter() - began},
                       budget=budget)
    if streaming is not None:
        results.sections["Streamed input: memory flat in the frames, and its cost"] = streaming.to_markdown()
        results.extra["streaming"] = streaming.to_json()
    if integrity is not None:
        from bench.integrity import markdown

        results.sections["Verifying a model file at load (full-size int8)"] = markdown(integrity)
        results.extra["integrity"] = integrity
    _write(results, settings, work)
    print(results.to_markdown())
    _log(f"bench finished in {time.perf_counter() - began:.0f} s")
    return 0


def _results(settings, peak, facts, rows, pooling, profiles, saving, auto, jetson_table, sources, threads,
             timings, budget=None) -> Results:
    from bench.report import index_memory_table, jetson_markdown, main_table, pooling_table
    from bench.variants import IndexMemory

    machine = _machine(peak)
    full, demo = facts["full"], facts["demo"]
    results = Results(machine, {**settings.to_json(), "timings_s": {**facts["timings_s"], **timings}}, rows=rows,
                      pooling=pooling)
    h, w = full["input_size"]
    n_full = next((r.iterations for r in rows if r.group == "full" and r.iterations), 0)
    n_demo = next((r.iterations for r in rows if r.group == "demo" and r.iterations), 0)
    results.sections["Machine"] = (
        f"{machine['cpu']}, {machine['cores']} core(s) at {machine['mhz']:.0f} MHz ({machine['arch']}; "
        f"{', '.join(machine['flags'])}); Python {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".\n\n"
        f"Peak (computed): {peak.assumption}. fp16 rows run fp32 arithmetic on this CPU (TFLite dequantizes "
        "fp16 weights at load), so they are held against the fp32 peak.\n\n"
        f"Run: batch 1; every row in its own process; interleaved rounds, the order rotated each round. "
        f"Total {timings['total_s'] / 60:.1f} min (prepare {timings['prepare_s']:.0f} s, timing "
        f"{timings['measure_s']:.0f} s, profiles and extras {timings['extras_s']:.0f} s)"
        + (" (--reuse: models and artifacts from an earlier run's --work, so prepare took no time)."
           if settings.reuse else "."))
    accuracy_note = (
        f"Full-size SegNet, {h}×{w}, alpha {full['alpha']:g}, {full['macs'] / 1e9:.1f} GMAC per frame (convolutions, "
        f"counted from the layers); {'trained weights' if full['trained'] else 'random weights'}; "
        f"{n_full} timed iterations per row after 1 warm-up, on {full['frames_source']}; int8 calibrated on "
        f"{full['calib_frames']} frames. × Keras, GOP/s and every other ratio use medians (robust to the spikes other "
        "processes on this shared machine cause): the Keras row's median at the same thread count over this row's. ")
    if not full["trained"]:
        accuracy_note += ("No agreement is shown for random weights: their class scores are near ties everywhere, "
                          "so any rounding flips them. The trained demo model below is the accuracy evidence.")
    full_rows = [r for r in rows if r.group == "full" and r.pooling == "argmax"]
    results.sections[f"Full-size SegNet ({h}×{w})"] = main_table(full_rows, accuracy_note)
    dh, dw = demo["input_size"]
    results.sections[f"Demo model ({dh}×{dw}, alpha {demo['alpha']:g})"] = main_table(
        [r for r in rows if r.group == "demo"],
        f"Trained on synthetic street scenes; {demo['macs'] / 1e6:.0f} MMAC per frame; {n_demo} timed iterations "
        f"per row after 2 warm-up; agreement and mIoU on {demo['frames_source']} (held out from training and "
        f"calibration). 'agreement, margin ≥ {CONFIDENT_MARGIN:g}' counts only the pixels where Keras' top-1 and "
        f"top-2 probabilities differ by at least {CONFIDENT_MARGIN:g}: "
        f"{100 * (demo.get('confident_share') or 0):.0f}% of them here (median margin "
        f"{demo.get('median_margin') or 0:.2f}); the rest are near ties any rounding may flip.")
    if pooling:
        from bench.report import markdown_table  # noqa: F401 - keeps the import list in one place

        results.sections["Pooling design (full-size SegNet, same weights, "
                         f"{threads} threads)"] = (
            pooling_table(pooling) + "\n\nMedians of the same interleaved rounds; the overhead is the median over "
            "rounds of ours / plain, the two timed back to back in each round. Ours: max_pool for the values, "
            "space_to_depth + arg_max over the innermost axis for the 2-bit window index; "
            "unpooling with the per-format mask (TFLite fp32 one_hot × mul, TFLite int8 identity-row gather × mul, "
            "ONNX select) and depth_to_space; the ONNX Runtime-only graphs (MaxUnpool rows, `convert` formats "
            "ort-fp32 / ort-int8) use ONNX's MaxPool with its Indices output and MaxUnpool, which TensorRT cannot "
            "parse, and their plain twin is quantized the same way (uint8 activations). "
            "Plain: max_pool + nearest resize (no indices: not SegNet, the floor). "
            "`tf.nn.max_pool_with_argmax` + `tf.scatter_nd` is the common Keras SegNet layer pair; converting "
            "it to TFLite needs Flex ops (MaxPoolWithArgmax), which TF 2.21's TFLite interpreter and the board's "
            "LiteRT runtime cannot run.\n\n"
            + index_memory_table(IndexMemory(full["index_memory"]["positions"])))
    if profiles:
        results.sections["Where the time goes (full-size, per op type)"] = "\n\n".join(p.to_markdown() for p in profiles)
        results.extra["profiles"] = [p.to_json() for p in profiles]
    if saving is not None:
        results.extra["labels_output"] = saving
    if auto is not None:
        results.sections["--backend auto on the demo artifacts"] = (
            f"`segnet-edge profile {Path(auto['folder']).name}/ --backend auto` measures every artifact it can run "
            f"and streams the fastest: {auto['reason']}.\n\n{auto['table']}")
        results.extra["autoselect"] = {k: v for k, v in auto.items() if k != "table"}
    if budget is not None:
        from bench.budget import budget_table, goals_line

        rows_, frames = budget
        results.sections[f"Board budget (full-size SegNet {h}×{w}, run_camera.py, one process per artifact)"] = (
            budget_table(rows_) + f"\n\nEach artifact streamed by a fresh `device/run_camera.py` (no TensorFlow, no "
            f"other model in the process), up to {frames} frames of a 480×360 video (about {BUDGET_ROW_S} s each at "
            f"its median inference), overlay rendered, {threads} threads; "
            "peak RSS is the process's high-water mark, loading included; LiteRT drops the model file's mapped pages "
            "once XNNPACK has packed the weights (the 'model file pages dropped' column, docs/memory.md section 6); "
            "the soak slope is fitted over the second "
            "half of these frames and extrapolated to 5,000 (bench/budget.py). " + goals_line(rows_) + ".")
        results.extra["budget"] = [r.to_json() for r in rows_]
    jetson = jetson_table(full["macs"], settings.jetson_efficiency)
    results.sections["Jetson Orin, on paper"] = jetson_markdown(jetson, full["macs"], settings.jetson_efficiency,
                                                                sources)
    if full.get("macs_channels_50"):
        from bench.pruning import jetson_pruned_lines

        results.sections["Jetson Orin, on paper"] += "\n\n" + jetson_pruned_lines(
            full["macs"], full["macs_channels_50"], 0.5, settings.jetson_efficiency)
    if "pruning" in facts:
        results.sections[f"Pruning (demo model, {threads} threads)"] = facts["pruning"]["markdown"]
    results.extra["jetson"] = {"efficiency": settings.jetson_efficiency, "rows": jetson, "sources": list(sources)}
    results.extra["facts"] = facts
    results.goals = _goals(rows, pooling, facts, auto, saving, threads)
    return results


def _write(results: Results, settings: Settings, work: Path) -> None:
    """bench/results.json, docs/benchmarks.md (the full report) and the README's three-line summary, every path
    in them relative to the checkout or to the run's scratch folder (no tracked file names this machine's folders)."""
    from bench.report import readme_summary, update_readme

    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(_relative(json.dumps(results.to_json(), indent=2, default=float), work) + "\n")
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(_relative(results.to_markdown(), work))
    _log(f"wrote {BENCHMARKS_MD} and {out / 'results.json'}")
    if settings.readme and README.is_file():
        README.write_text(update_readme(README.read_text(), readme_summary(results, time.strftime("%Y-%m-%d"))))
        _log(f"updated {README}")


def _relative(text: str, work: Path) -> str:
    """This checkout's folder and the one beside it (../shared) as relative paths; the run's scratch folder
    (a temporary one unless --work) as WORK/."""
    text = text.replace(f"{Path(work).resolve()}/", "WORK/").replace(f"{work}/", "WORK/")
    return text.replace(f"{REPO}/", "").replace(f"{REPO.parent}/", "../")


if __name__ == "__main__":
    sys.exit(main())
