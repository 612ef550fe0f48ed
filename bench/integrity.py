"""What the payload digest costs at load: `check_artifact` with and without verification, on one artifact.

    python bench/integrity.py MODEL [--repeats 7]

`make bench` runs it on the full-size int8 TFLite SegNet (~30 MB). The check reads the
file and takes one SHA-256 pass over it (segnet_edge.device.integrity); the row says
how long that adds to a start-up, next to the static checks every load runs anyway.
Medians of `repeats` runs with the file in the page cache (a board that just copied
the file has it there too; a cold read from an SD card adds its own read time, which
the runtime's load would pay anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def verification_cost(path: str | Path, repeats: int = 7) -> dict:
    """Median ms of check_artifact with and without the digest check, and of SHA-256 alone, on `path`."""
    from segnet_edge.device import artifact_check
    from segnet_edge.device.artifact_metadata import payload_files

    path = Path(path)
    if artifact_check.check_artifact(path, verify=False).payload_sha256 is None:
        raise ValueError(f"{path} carries no payload digest; convert it with this segnet-edge")

    def verified() -> None:
        artifact_check._verified.clear()  # measure the check, not the once-per-process memo
        artifact_check.check_artifact(path)

    size = sum(f.stat().st_size for f in payload_files(path))
    data = b"".join(f.read_bytes() for f in payload_files(path))
    with_ms = _median_ms(verified, repeats)
    without_ms = _median_ms(lambda: artifact_check.check_artifact(path, verify=False), repeats)
    sha_ms = _median_ms(lambda: hashlib.sha256(data).digest(), repeats)
    return {"file": path.name, "size_mb": size / 1e6, "check_ms": with_ms, "check_no_verify_ms": without_ms,
            "verify_ms": with_ms - without_ms, "sha256_ms": sha_ms, "sha256_mb_per_s": size / 1e3 / sha_ms,
            "repeats": repeats}


def markdown(cost: dict) -> str:
    return (f"| file | MB | checks at load, verified | --no-verify | verification adds | SHA-256 alone |\n"
            f"|---|---:|---:|---:|---:|---:|\n"
            f"| {cost['file']} | {cost['size_mb']:.1f} | {cost['check_ms']:.1f} ms | {cost['check_no_verify_ms']:.1f} ms"
            f" | {cost['verify_ms']:.1f} ms | {cost['sha256_ms']:.1f} ms ({cost['sha256_mb_per_s']:.0f} MB/s) |\n\n"
            f"Medians of {cost['repeats']} runs of `check_artifact` (segnet_edge.device.artifact_check), the file in "
            "the page cache: verification reads the file once more and takes one SHA-256 pass over it, before "
            "any runtime opens it.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an artifact written by segnet-edge convert (.tflite, .onnx, .engine)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        print(markdown(verification_cost(args.model, args.repeats)))
    except ValueError as exc:
        print(f"bench/integrity.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
