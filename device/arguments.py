"""Command-line flags shared by run_camera.py and `segnet-edge profile`.

Flags default to None and only override what was given, so every default lives
in the dataclasses (RunConfig, PipelineConfig, CaptureSettings, BackendOptions).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from segnet_edge.device.backends.base import backend_names
from segnet_edge.device.cli_core import non_negative_int, number, positive_int
from segnet_edge.device.errors import UsageError
from segnet_edge.device.pipeline import stall_after
from segnet_edge.device.session import RunConfig, with_given


def add_stream_arguments(parser: argparse.ArgumentParser, defaults: RunConfig) -> None:
    """Source, runtime and measurement flags (both commands); help shows the command's defaults."""
    parser.add_argument("--source", help="0 (camera index), /dev/videoN, csi://N, rtsp://..., http://..., "
                        f"a video file, an image folder, or synthetic (default: {defaults.source})")
    parser.add_argument("--backend", choices=(*backend_names(), "auto"),
                        help="override the backend the file extension picks; auto: time each MODEL (folders: "
                        "their artifacts) briefly and stream the fastest")
    parser.add_argument("--frames", type=non_negative_int, help="stop after N frames, warm-up included "
                        f"(default: {defaults.pipeline.frames or 'until the source ends'})")
    parser.add_argument("--warmup", type=non_negative_int,
                        help=f"frames left out of the summary (default: {defaults.pipeline.warmup})")
    parser.add_argument("--threads", type=non_negative_int, help="CPU threads for the runtime (XNNPACK / ORT)")
    parser.add_argument("--providers", help="ONNX Runtime execution providers, comma separated, in order")
    parser.add_argument("--gpu", type=non_negative_int, help="CUDA device index (TensorRT)")
    parser.add_argument("--no-verify", action="store_true", help="skip the model file's SHA-256 check against the "
                        "digest recorded at conversion (starts faster; damage then goes unnoticed)")
    parser.add_argument("--width", type=positive_int, help="capture width (cameras, csi://, synthetic)")
    parser.add_argument("--height", type=positive_int, help="capture height")
    parser.add_argument("--fps", type=number, help="capture frame rate")
    parser.add_argument("--timeout", type=number, metavar="SECONDS",
                        help="a network stream silent this long is lost and reconnected; a read blocked for "
                        "3x this + 1 s is abandoned for a fresh connection (OpenCV builds without read timeouts, "
                        "e.g. JetPack 4, GStreamer) "
                        f"(default: {defaults.capture.timeout_s:g})")
    parser.add_argument("--out", help=f"folder for profile.json, frames.csv, profile.md, profile.png "
                        f"(default: {defaults.out})")
    parser.add_argument("--no-plot", action="store_true", help="skip profile.png")


def add_output_arguments(parser: argparse.ArgumentParser, defaults: RunConfig) -> None:
    """Annotated outputs and robustness flags (run_camera only)."""
    parser.add_argument("--alpha", type=number, help=f"overlay opacity, 0..1 (default: {defaults.pipeline.alpha})")
    parser.add_argument("--no-legend", action="store_true", help="no class legend on the frames")
    parser.add_argument("--display", action="store_true", help="show the annotated stream in a window")
    parser.add_argument("--save-video", metavar="PATH", help="write the annotated stream (.avi, .mp4, .mkv)")
    parser.add_argument("--save-masks", metavar="DIR", help="write one label PNG per frame")
    parser.add_argument("--jsonl", metavar="PATH", help="per-frame JSON lines (relative: inside --out; - for "
                        f"stdout; none to disable; default: {defaults.jsonl})")
    parser.add_argument("--retries", type=non_negative_int, help="reconnect attempts when a live source drops "
                        f"(default: {defaults.pipeline.retries})")
    parser.add_argument("--retry-delay", type=number, help="first reconnect delay in seconds, doubling "
                        f"(default: {defaults.pipeline.retry_delay_s})")
    parser.add_argument("--queue-size", type=positive_int, help="capture queue length for files "
                        f"(default: {defaults.pipeline.queue_size})")


def config_from_args(args: argparse.Namespace, base: RunConfig) -> RunConfig:
    """`base` with every flag that was given applied."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    providers = get("providers")
    if providers is not None:
        providers = tuple(p.strip() for p in providers.split(",") if p.strip())
        if not providers:
            raise UsageError("--providers needs at least one execution provider name")
    alpha = get("alpha")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
    retry_delay = get("retry_delay")
    if retry_delay is not None and retry_delay < 0:
        raise UsageError(f"--retry-delay must be 0 or more, got {retry_delay}")
    fps = get("fps")
    if fps is not None and fps <= 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    timeout = get("timeout")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout}")
    jsonl = get("jsonl")
    config = with_given(
        base, source=get("source"), backend=get("backend"), out=get("out"), save_video=get("save_video"),
        save_masks=get("save_masks"), display=True if get("display") else None,
        plot=False if get("no_plot") else None,
    )
    if jsonl is not None:
        config = replace(config, jsonl=None if jsonl.lower() == "none" else jsonl)
    return replace(
        config,
        capture=with_given(config.capture, width=get("width") or None, height=get("height") or None, fps=fps,
                           timeout_s=timeout),
        options=with_given(config.options, threads=get("threads"), providers=providers, device=get("gpu"),
                           verify=False if get("no_verify") else None),
        pipeline=with_given(config.pipeline, frames=get("frames"), warmup=get("warmup"), alpha=alpha,
                            legend=False if get("no_legend") else None, retries=get("retries"),
                            retry_delay_s=retry_delay, queue_size=get("queue_size") or None,
                            stall_timeout_s=None if timeout is None else stall_after(timeout)),
    )
