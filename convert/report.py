"""`report.json` and `report.md`: every artifact, what it is, how it was made, and the proof it is right."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from segnet_edge.convert.context import Check
from segnet_edge.convert.equalize import Equalization
from segnet_edge.convert.index_share import IndexShare
from segnet_edge.convert.options import ConvertOptions, Targets
from segnet_edge.convert.parity import CONFIDENT_MARGIN, EDGE_RADIUS, Parity, Sensitivity
from segnet_edge.device.metadata import ModelMetadata


@dataclass
class ArtifactReport:
    format: str
    file: str | None  # None when skipped
    description: str
    size_bytes: int | None = None
    seconds: float = 0.0  # conversion time
    ops: list[str] = field(default_factory=list)
    unpool_mode: str | None = None
    parity: Parity | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    command: str | None = None  # how to build it on the target, when skipped here
    metadata: ModelMetadata | None = None
    index_share: IndexShare | None = None  # int8 TFLite: how much of the disagreement the pooling indices explain
    mixed_precision: object | None = None  # int8 TFLite: precision_search.MixedPrecision (--keep-float and co.)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_json(self) -> dict:
        return {
            "format": self.format, "file": self.file, "description": self.description,
            "status": "skipped" if self.skipped else ("pass" if self.passed else "fail"),
            "size_bytes": self.size_bytes, "seconds": round(self.seconds, 3), "ops": self.ops,
            "unpool_mode": self.unpool_mode, "parity": None if self.parity is None else self.parity.to_json(),
            "pooling_indices": None if self.index_share is None else self.index_share.to_json(),
            "mixed_precision": None if self.mixed_precision is None else self.mixed_precision.to_json(),
            "checks": [c.to_json() for c in self.checks], "notes": self.notes, "skipped": self.skipped,
            "command": self.command, "metadata": None if self.metadata is None else self.metadata.to_json(),
        }


@dataclass
class ConvertReport:
    model: str
    out_dir: str
    options: ConvertOptions
    metadata: ModelMetadata
    qat: bool
    calibration: dict | None
    parity_frames: dict | None
    artifacts: list[ArtifactReport] = field(default_factory=list)
    sensitivity: Sensitivity | None = None
    equalization: Equalization | None = None
    seconds: float = 0.0
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def failures(self) -> list[str]:
        return [f"{a.format}: {c.name}: {c.detail}" for a in self.artifacts for c in a.checks if not c.passed]

    def artifact(self, name: str) -> ArtifactReport:
        return next(a for a in self.artifacts if a.format == name)

    def to_json(self) -> dict:
        return {
            "model": self.model, "out_dir": self.out_dir, "created": self.created, "seconds": round(self.seconds, 2),
            "passed": self.passed, "failures": self.failures(), "qat": self.qat,
            "options": self.options.to_json(), "metadata": self.metadata.to_json(),
            "calibration": self.calibration, "parity_frames": self.parity_frames,
            "sensitivity": None if self.sensitivity is None else self.sensitivity.to_json(),
            "equalization": None if self.equalization is None else self.equalization.to_json(),
            "artifacts": [a.to_json() for a in self.artifacts],
        }

    def summary_lines(self) -> list[str]:
        """One line per artifact, for the terminal."""
        lines = [f"parity: {_frames_line(self.parity_frames)}"]
        for a in self.artifacts:
            if a.skipped:
                lines.append(f"{a.format:<12} skipped: {a.skipped}")
                if a.command:
                    lines.append(f"{'':<12} on the target: {a.command}")
                continue
            size = f"{a.size_bytes / 1e6:8.2f} MB" if a.size_bytes is not None else ""
            parity = ""
            if a.parity is not None:
                parity = f"  agreement {100 * a.parity.agreement:7.3f}%"
                if a.parity.confident_agreement is not None:
                    parity += f" (margin >= {CONFIDENT_MARGIN:g}: {100 * a.parity.confident_agreement:7.3f}%)"
                if a.parity.miou is not None:
                    parity += f"  mIoU {100 * a.parity.miou:5.1f} ({a.parity.miou_delta_points:+.2f})"
            lines.append(f"{a.format:<12} {a.file:<20}{size}{parity}  {'PASS' if a.passed else 'FAIL'}")
            lines += [f"{'':<12} failed: {c.name}: {c.detail}" for c in a.checks if not c.passed]
            if not a.passed and (edges := edge_line(a.parity)):
                lines.append(f"{'':<12} {edges}")
            if a.mixed_precision is not None:
                lines.append(f"{'':<12} {a.mixed_precision.cost_line()}")
            if not a.passed and a.index_share is not None:
                lines.append(f"{'':<12} {a.index_share.line()}")
        if self.sensitivity is not None and not self.passed:
            lines.append(self.sensitivity_line())
        return lines

    def sensitivity_line(self) -> str:
        s = self.sensitivity
        return (f"model sensitivity: ±{s.noise_grey_levels:g} grey-level input noise (below a camera's 8-bit step) "
                f"alone changes {100 * (1 - s.agreement):.2f}% of the Keras model's own pixels; "
                f"{100 * s.near_tie_share:.1f}% of its pixels are near ties (top-2 margin < {CONFIDENT_MARGIN:g})")

    def to_markdown(self) -> str:
        m = self.metadata
        out = [
            f"# Conversion report: {self.model}",
            "",
            f"- Created {self.created} in {self.seconds:.1f} s; overall: **{'PASS' if self.passed else 'FAIL'}**",
            f"- Model: {m.arch} alpha {m.alpha:g}, {m.num_classes} classes, input {m.input_size[0]}x{m.input_size[1]}"
            f"{', QAT' if self.qat else ''}"
            f"{f'; file sha256 {m.source_sha256[:16]}… (in every artifact)' if m.source_sha256 else ''}",
            f"- Calibration: {_calibration_line(self.calibration)}",
            f"- Parity frames: {_frames_line(self.parity_frames)}",
            f"- {targets_line(self.options.targets)}",
            *([f"- {self.sensitivity_line()[0].upper()}{self.sensitivity_line()[1:]}: read int8 disagreement "
               "against it"] if self.sensitivity is not None else []),
            f"- {self.equalization.line()[0].upper()}{self.equalization.line()[1:]}" if self.equalization else
            "- Activation equalization: off (--no-equalize, a QAT model, or no calibration frames)",
            f"- TensorRT target {self.options.trt_version}, ONNX opset {self.options.onnx_opset}, "
            f"batch {self.options.batch}",
            "",
            f"| artifact | size | convert s | agreement | agreement, margin ≥ {CONFIDENT_MARGIN:g} | max / mean abs diff "
            "| mIoU (delta) | status |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for a in self.artifacts:
            if a.skipped:
                out.append(f"| {a.format} | | | | | | | skipped: {a.skipped} |")
                continue
            p = a.parity
            agreement = f"{100 * p.agreement:.3f}%" if p else "n/a"
            confident = f"{100 * p.confident_agreement:.3f}%" if p and p.confident_agreement is not None else "n/a"
            diff = f"{p.max_abs_diff:.4f} / {p.mean_abs_diff:.5f}" if p else "n/a"
            miou = f"{100 * p.miou:.2f} ({p.miou_delta_points:+.2f})" if p and p.miou is not None else "n/a"
            size = f"{a.size_bytes / 1e6:.2f} MB" if a.size_bytes is not None else ""
            out.append(f"| `{a.file}` | {size} | {a.seconds:.1f} | {agreement} | {confident} | {diff} | {miou} | "
                       f"{'pass' if a.passed else '**FAIL**'} |")
        out += ["", "## Artifacts", ""]
        for a in self.artifacts:
            out.append(f"### {a.format}: {a.file or '(not built here)'}")
            out.append("")
            out.append(f"{a.description}. Unpooling: {a.unpool_mode or 'n/a'}.")
            out.append("")
            if a.ops:
                out.append(f"- ops: {', '.join(a.ops)}")
            out += [f"- {'pass' if c.passed else 'FAIL'}: {c.name}: {c.detail}" for c in a.checks]
            if edges := edge_line(a.parity):
                out.append(f"- {edges}")
            if a.index_share is not None:
                out.append(f"- {a.index_share.line()}")
            out += [f"- note: {n}" for n in a.notes]
            out += mixed_precision_markdown(a.mixed_precision)
            if a.skipped:
                out.append(f"- skipped: {a.skipped}")
            if a.command:
                out.append(f"- build on the target: `{a.command}`")
            out.append("")
        return "\n".join(out) + "\n"


def mixed_precision_markdown(mixed) -> list[str]:
    """The kept-float layers and their cost, the search's path and the per-layer int8 error table."""
    if mixed is None:
        return []
    out = [f"- {mixed.cost_line()}"]
    if mixed.search is not None:
        out += ["", "Precision search (TFLite only):", "", "```", *mixed.search.lines(), "```"]
    if mixed.layer_errors is not None:
        out += ["", *mixed.layer_errors.markdown()]
    return out


def targets_line(t: Targets) -> str:
    return (f"Targets: fp32 argmax agreement >= {100 * t.float_agreement:g}% of all pixels; fp16 >= "
            f"{100 * t.fp16_confident_agreement:g}% and int8 >= {100 * t.int8_confident_agreement:g}% on the pixels "
            f"where Keras' top-2 margin >= {CONFIDENT_MARGIN:g}; int8 mIoU within {t.int8_miou_points:g} point of "
            "Keras. All-pixel agreement of fp16 and int8 is information: their flips are near ties on class edges")


def edge_line(parity: Parity | None) -> str | None:
    """None where there is nothing to place: no parity, no differing pixel, or no pixel off the edges."""
    if parity is None or parity.edge_share_of_disagreement is None or parity.off_edge_agreement is None:
        return None
    return (f"where it differs: {100 * parity.edge_share_of_disagreement:.0f}% of the differing pixels lie within "
            f"{EDGE_RADIUS} px of a class edge of Keras' own label map ({100 * parity.edge_share:.1f}% of all pixels); "
            f"away from those edges{_few_pixels(parity)} agreement is {100 * parity.off_edge_agreement:.2f}%")


def _few_pixels(parity: Parity) -> str:
    """Names the count where under 1% of the pixels lie off the edges (an undecided model's label map is all
    edges), so a 0% or 100% over a handful of pixels is not read as a measure."""
    off_share = 1.0 - (parity.edge_share or 0.0)
    return f" (only {parity.off_edge_pixels} pixels)" if parity.off_edge_pixels and off_share < 0.01 else ""


def _calibration_line(calibration: dict | None) -> str:
    if not calibration:
        return "none"
    r = calibration["recipe"]
    return (f"{calibration['frames']} frames from {r['kind']} `{r['source']}` (seed {r['seed']}), "
            f"{calibration['holdout_frames']} held out")


def _frames_line(frames: dict | None) -> str:
    if not frames:
        return "none (give --calib, --calib-data or --eval-data to measure parity)"
    labelled = "with labels" if frames["labelled"] else "without labels"
    return f"{frames['frames']} frames {labelled} from {frames['source']}"
