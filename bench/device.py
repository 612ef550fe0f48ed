"""Device runtime targets, as ratios from one run of the real pipeline on synthetic frames.

    python bench/device.py [MODEL] [--frames 300] [--threads N]     (--frames 5000 for the leak check)

- end-to-end FPS / (1 / mean inference)   target >= 0.9 (capture and rendering overlap inference)
- (preprocess + postprocess) / inference  target <= 0.10
- RSS growth after warm-up                 target < 10 MB over a 5,000-frame stream

Without MODEL it uses demo_out/export/model_fp32.tflite when `make demo` has run,
else builds a random SegNet of the demo's shape (96x128, alpha 0.25, 11 classes)
with TensorFlow and converts it to TFLite first (host only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout: `bench` is a folder, not an installed package
DEMO_MODEL = REPO / "demo_out" / "export" / "model_fp32.tflite"
DEMO_SIZE, DEMO_ALPHA = (96, 128), 0.25


def build_demo_like_model(folder: Path) -> Path:
    """A random SegNet with the demo's shape as a fp32 TFLite file with metadata (needs TensorFlow)."""
    from segnet_edge._tf import tf
    from segnet_edge.device.artifact_metadata import embed_tflite_metadata
    from segnet_edge.device.metadata import CAMVID_CLASSES, CAMVID_PALETTE, ModelMetadata
    from segnet_edge.models import ModelConfig, build_model

    model = build_model(ModelConfig(arch="segnet", input_size=DEMO_SIZE, num_classes=len(CAMVID_CLASSES),
                                    alpha=DEMO_ALPHA))
    meta = ModelMetadata(class_names=CAMVID_CLASSES, palette=CAMVID_PALETTE, input_size=DEMO_SIZE,
                         alpha=DEMO_ALPHA, format="tflite")
    path = folder / "bench_fp32.tflite"
    path.write_bytes(embed_tflite_metadata(tf.lite.TFLiteConverter.from_keras_model(model).convert(), meta))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .tflite / .onnx / .engine file (default: the demo's)")
    parser.add_argument("--frames", type=int, default=300, help="frames to stream (5000 for the RSS target)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)

    from bench.budget import run_in_own_process

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else DEMO_MODEL if DEMO_MODEL.is_file() else None
        if model is None:
            print("bench/device: no model given and no demo_out; building a demo-shaped SegNet", file=sys.stderr)
            model = build_demo_like_model(Path(tmp))
        # run_camera.py in a process of its own: this one may have imported TensorFlow to build the model
        try:
            entry, _ = run_in_own_process(model, "synthetic", Path(tmp) / "report", args.frames, args.warmup,
                                          args.threads, ("--width", str(args.width), "--height", str(args.height)))
        except RuntimeError as exc:
            print(f"bench/device: error: {exc}", file=sys.stderr)
            return 2
    lat = entry["latency_ms"]
    inference = lat["inference"]["mean"]
    fps_ratio = entry["fps"] * inference / 1000.0
    overhead = (lat["preprocess"]["mean"] + lat["postprocess"]["mean"]) / inference
    growth = entry["memory"]["rss_growth_mb"]
    print(f"model: {model.name} ({entry['runtime']}), {entry['frames']} frames after {entry['warmup_frames']} "
          f"warm-up, {args.width}x{args.height} synthetic frames")
    print(f"inference mean {inference:.2f} ms, end-to-end {entry['fps']:.1f} FPS; stage means (ms): "
          + ", ".join(f"{stage} {stats['mean']:.2f}" for stage, stats in lat.items()))
    print(f"fps_vs_inference_ratio   {fps_ratio:.3f}   (target >= 0.90) {'ok' if fps_ratio >= 0.9 else 'MISSED'}")
    print(f"pre_post_over_inference  {overhead:.3f}   (target <= 0.10) {'ok' if overhead <= 0.10 else 'MISSED'}")
    print(f"rss_growth_mb            {growth:.2f}    (target < 10 over 5000 frames; this run {entry['frames']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
