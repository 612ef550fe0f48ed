"""Mixed-precision int8 TFLite: `--keep-float`, `--layer-error` and `--precision-search` (TFLite only).

The model is calibrated once; the MLIR quantizer then quantizes that calibrated graph as
often as needed, each time with other layers left in float (convert/keep_float.py). The
search keeps the layers of the per-layer error ranking (convert/layer_error.py) in float,
worst first, one more at each step, measuring agreement with Keras, mIoU and latency on
the parity frames after each step, and stops at the first set that meets the budget. The
ONNX graphs take `--keep-float` but are not searched: their error ranking would need a
quantization per layer through ONNX Runtime's calibrator, minutes each on the demo model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segnet_edge.convert.context import Check, ConversionError, ExportContext
from segnet_edge.convert.layer_error import LayerErrorTable, measure_layer_errors, run_flatbuffer
from segnet_edge.convert.options import ConvertOptions

LATENCY_RUNS = 15  # timed invokes per measurement (after 2 warm-up ones); the median is reported


def asked(options: ConvertOptions) -> bool:
    return bool(options.keep_float or options.layer_error or options.precision_search)


def _ready(flatbuffer: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=os.cpu_count() or 1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    return interpreter


def paired_latency_ms(flatbuffer: bytes, reference: bytes, runs: int = LATENCY_RUNS) -> tuple[float, float]:
    """Median invoke times of `flatbuffer` and `reference` on this host (LiteRT with its default XNNPACK delegate,
    every core), their runs interleaved so that a busy machine slows both alike: for comparing the two, not a
    board's figure."""
    pair = [_ready(flatbuffer), _ready(reference)]
    times: list[list[float]] = [[], []]
    for n in range(runs + 2):
        for k, interpreter in enumerate(pair):
            start = time.perf_counter()
            interpreter.invoke()
            if n >= 2:
                times[k].append(time.perf_counter() - start)
    return 1000 * float(np.median(times[0])), 1000 * float(np.median(times[1]))


@dataclass(frozen=True)
class Budget:
    agreement: float  # all-pixel argmax agreement with Keras, at least
    miou_points: float  # |mIoU delta| at most, in points (when the frames have labels)
    max_latency: float | None = None  # x the full int8 model's latency, at most

    def line(self) -> str:
        latency = f", latency <= {self.max_latency:g}x full int8" if self.max_latency else ""
        return f"agreement >= {100 * self.agreement:g}%, mIoU within {self.miou_points:g} point{latency}"


@dataclass(frozen=True)
class Step:
    layers: tuple[str, ...]  # kept float
    agreement: float
    miou_delta: float | None  # points
    latency_ms: float
    latency_ratio: float  # against the full int8 model, timed interleaved with it
    size_bytes: int

    def meets(self, budget: Budget) -> bool:
        miou_ok = self.miou_delta is None or abs(self.miou_delta) <= budget.miou_points
        latency_ok = budget.max_latency is None or self.latency_ratio <= budget.max_latency
        return self.agreement >= budget.agreement and miou_ok and latency_ok

    def line(self, base: Step) -> str:
        miou = f", mIoU {self.miou_delta:+.2f}" if self.miou_delta is not None else ""
        named = ", ".join(self.layers[len(base.layers):][-1:]) or "none"
        return (f"{len(self.layers):3d} float (+{named}): agreement {100 * self.agreement:.3f}%{miou}, "
                f"{self.latency_ms:.2f} ms ({self.latency_ratio:.2f}x), {self.size_bytes / 1e6:.2f} MB")

    def to_json(self) -> dict:
        return {"layers": list(self.layers), "agreement": round(self.agreement, 6),
                "miou_delta_points": None if self.miou_delta is None else round(self.miou_delta, 4),
                "latency_ms": round(self.latency_ms, 3), "latency_ratio": round(self.latency_ratio, 3),
                "size_bytes": self.size_bytes}


@dataclass
class Search:
    budget: Budget
    frames: int
    steps: list[Step] = field(default_factory=list)  # steps[0]: the starting set (full int8 or --keep-float)
    chosen: int | None = None  # index into steps
    stopped: str = ""  # why it stopped without meeting the budget

    def lines(self) -> list[str]:
        base = self.steps[0]
        out = [f"precision search on {self.frames} frames, budget {self.budget.line()}:"]
        out += [f"  {step.line(base)}" for step in self.steps]
        if self.chosen is not None:
            out.append(f"  chosen: {len(self.steps[self.chosen].layers)} layer(s) float")
        else:
            out.append(f"  budget unreachable: {self.stopped}; the artifact is the starting set's")
        return out

    def to_json(self) -> dict:
        return {"budget": {"agreement": self.budget.agreement, "miou_points": self.budget.miou_points,
                           "max_latency": self.budget.max_latency},
                "frames": self.frames, "steps": [s.to_json() for s in self.steps], "chosen": self.chosen,
                "reached": self.chosen is not None, "stopped": self.stopped or None}


def search(start: tuple[str, ...], ranking: list[str], evaluate: Callable[[tuple[str, ...]], Step],
           budget: Budget, frames: int, log: Callable[[str], None] = lambda m: None, io_dtype: str = "int8") -> Search:
    """Greedy: `start`, then one more layer of `ranking` at a time, until a step meets `budget`."""
    result = Search(budget, frames)
    order = [layer for layer in ranking if layer not in start]
    for k in range(len(order) + 1):
        step = evaluate((*start, *order[:k]))
        result.steps.append(step)
        log(f"precision search: {step.line(result.steps[0])}")
        if step.meets(budget):
            result.chosen = len(result.steps) - 1
            return result
        ratio = step.latency_ratio
        if budget.max_latency is not None and ratio > budget.max_latency:
            result.stopped = f"{len(step.layers)} float layers already take {ratio:.2f}x the latency " \
                             f"(limit {budget.max_latency:g}x) at {100 * step.agreement:.3f}% agreement"
            return result
    last = result.steps[-1]
    miou = f", mIoU {last.miou_delta:+.2f}" if last.miou_delta is not None else ""
    io = "" if io_dtype == "float32" else f" (its {io_dtype} input and output stay; `--io float32` lifts them)"
    result.stopped = f"with every layer float the graph reaches {100 * last.agreement:.3f}%{miou}{io}"
    return result


@dataclass
class MixedPrecision:
    """What the int8 TFLite artifact kept in float, what that cost, and how it was chosen."""

    kept: tuple[str, ...]
    float_ops: int
    size_bytes: int
    int8_size_bytes: int
    latency_ms: float
    int8_latency_ms: float
    layer_errors: LayerErrorTable | None = None
    search: Search | None = None

    def cost_line(self) -> str:
        if not self.kept:
            return "mixed precision: every layer int8"
        return (f"kept float: {', '.join(self.kept)} ({self.float_ops} ops); cost: "
                f"{self.size_bytes / 1e6:.2f} MB vs {self.int8_size_bytes / 1e6:.2f} MB full int8 "
                f"({self.size_bytes / self.int8_size_bytes:.2f}x), {self.latency_ms:.2f} ms vs "
                f"{self.int8_latency_ms:.2f} ms ({self.latency_ms / self.int8_latency_ms:.2f}x, this host, LiteRT "
                f"+ XNNPACK, {os.cpu_count()} threads)")

    def to_json(self) -> dict:
        return {"kept_float": list(self.kept), "float_ops": self.float_ops, "size_bytes": self.size_bytes,
                "int8_size_bytes": self.int8_size_bytes, "latency_ms": round(self.latency_ms, 3),
                "int8_latency_ms": round(self.int8_latency_ms, 3),
                "layer_errors": None if self.layer_errors is None else self.layer_errors.to_json(),
                "search": None if self.search is None else self.search.to_json()}

    def checks(self) -> list[Check]:
        if self.search is None:
            return []
        s = self.search
        if s.chosen is None:
            return [Check("precision search budget", False, f"unreachable ({s.budget.line()}): {s.stopped}")]
        step = s.steps[s.chosen]
        return [Check("precision search budget", True, f"{len(step.layers)} layer(s) float: agreement "
                                                       f"{100 * step.agreement:.3f}% on {s.frames} frames "
                                                       f"({s.budget.line()})")]


def mixed_int8(ctx: ExportContext, calibrated: bytes) -> tuple[bytes, MixedPrecision]:
    """The int8 flatbuffer with `--keep-float`'s layers (and the search's) in float, and the report's record."""
    from segnet_edge.convert.keep_float import ALL, tflite_nodes, tflite_units
    from segnet_edge.convert.parity import mean_iou
    from segnet_edge.convert.tflite_ranges import quantize_calibrated

    options = ctx.options
    units = tflite_units(calibrated, ctx.source.model().layers[-1].name)

    def quantize(nodes: list[str]) -> bytes:
        return quantize_calibrated(calibrated, options.io_dtype, nodes)

    def build(layers: tuple[str, ...]) -> bytes:
        return quantize(tflite_nodes(units, layers))

    start = tuple(units) if ALL in options.keep_float else tuple(options.keep_float)
    base = build(start)  # checks the names against the graph before any long measurement
    table = found = None
    if options.layer_error or options.precision_search:
        if ctx.frames is None or ctx.reference is None:
            raise ConversionError("--layer-error and --precision-search measure on parity frames: give --calib with "
                                  "held-out frames or --eval-data")
        ctx.log("tflite-int8: per-layer int8 error")
        table = measure_layer_errors(units, quantize, ctx.frames.inputs, ctx.reference, ctx.log)
    chosen = start
    full = quantize([])
    if options.precision_search:
        frames, reference = ctx.frames, ctx.reference
        reference_miou = None if frames.labels is None else mean_iou(reference, frames.labels, ctx.metadata)

        def evaluate(layers: tuple[str, ...]) -> Step:
            flatbuffer = build(layers)
            probabilities = run_flatbuffer(flatbuffer, frames.inputs).probabilities
            agreement = float(np.mean(probabilities.argmax(-1) == reference.argmax(-1)))
            miou = None if reference_miou is None else 100 * (mean_iou(probabilities, frames.labels, ctx.metadata)
                                                              - reference_miou)
            ms, full_ms = paired_latency_ms(flatbuffer, full)
            return Step(layers, agreement, miou, ms, ms / full_ms, len(flatbuffer))

        budget = Budget(options.search_agreement, options.search_miou_points, options.search_max_latency)
        found = search(start, table.ranking(), evaluate, budget, len(frames.inputs), ctx.log, options.io_dtype)
        for line in found.lines():
            ctx.log(line)
        if found.chosen is not None:
            chosen = found.steps[found.chosen].layers
    flatbuffer = base if chosen == start else build(chosen)
    nodes = tflite_nodes(units, chosen)
    ms, full_ms = paired_latency_ms(flatbuffer, full)
    record = MixedPrecision(chosen, len(nodes), len(flatbuffer), len(full), ms, full_ms, table, found)
    return flatbuffer, record
