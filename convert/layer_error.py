"""Per-layer int8 error of the TFLite model: how far each layer's int8 rounding alone moves the result.

For each layer, the calibrated model is quantized with that layer in int8 and every other
layer left in float (the quantizer's deny-list, as TensorFlow's QuantizationDebugger uses
it), and run on the parity frames: the pixels whose argmax then differs from Keras', beyond
those the all-float graph already loses to its int8 input and output, are that layer's
alone. Each run also reads the pooling indices (ARG_MAX outputs) and counts the 2x2 windows
whose index differs from the all-float graph's at each pooling level: SegNet's int8 error
is mostly such flips inside near-tie windows (convert/index_share.py), and this table says
which layer's rounding makes them. The ranking is what `--precision-search` walks.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: quantize(nodes kept float) -> flatbuffer
Quantizer = Callable[[list[str]], bytes]


@dataclass
class RunResult:
    probabilities: np.ndarray  # (N, H, W, C) float
    indices: list[list[np.ndarray]]  # per frame, the ARG_MAX outputs in graph order


def run_flatbuffer(flatbuffer: bytes, inputs: np.ndarray, indices: bool = False) -> RunResult:
    """Float probabilities from a (mixed) int8 flatbuffer, its input and output quantized as its tensors say."""
    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.convert.tflite import _quantization
    from segnet_edge.device.preprocess import dequantize, quantize

    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=flatbuffer, experimental_preserve_all_tensors=indices,
                                  num_threads=os.cpu_count() or 1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_q, out_q = _quantization(inp), _quantization(out)
    argmax = [op["outputs"][0] for op in interpreter._get_ops_details() if op["op_name"] == "ARG_MAX"] if indices else []
    outputs, found = [], []
    for x in inputs:
        interpreter.set_tensor(inp["index"], quantize(x[None], in_q))
        interpreter.invoke()
        outputs.append(dequantize(interpreter.get_tensor(out["index"]), out_q))
        found.append([interpreter.get_tensor(t).copy() for t in argmax])
    return RunResult(np.concatenate(outputs), found)


def index_flips(run: RunResult, baseline: RunResult) -> tuple[float, ...]:
    """Per pooling level: the share of windows whose index differs from the baseline's."""
    if not run.indices or not run.indices[0] or len(run.indices[0]) != len(baseline.indices[0]):
        return ()
    levels = len(run.indices[0])
    return tuple(float(np.mean([np.mean(a[k] != b[k]) for a, b in zip(run.indices, baseline.indices)]))
                 for k in range(levels))


@dataclass(frozen=True)
class LayerError:
    layer: str
    ops: int  # ops of the TFLite graph that are this layer
    agreement: float  # only this layer int8, against Keras
    points: float  # agreement points it alone loses, beyond the all-float graph's
    index_flips: tuple[float, ...]  # per pooling level, against the all-float graph

    def to_json(self) -> dict:
        return {"layer": self.layer, "ops": self.ops, "agreement": round(self.agreement, 6),
                "points": round(self.points, 4), "index_flips": [round(f, 6) for f in self.index_flips]}


@dataclass
class LayerErrorTable:
    frames: int
    float_agreement: float  # every layer float (int8 input and output only), against Keras
    int8_agreement: float  # every layer int8
    int8_index_flips: tuple[float, ...]  # the full int8 graph's, per pooling level
    rows: list[LayerError] = field(default_factory=list)  # worst first

    def ranking(self) -> list[str]:
        return [row.layer for row in self.rows]

    def to_json(self) -> dict:
        return {"frames": self.frames, "float_agreement": round(self.float_agreement, 6),
                "int8_agreement": round(self.int8_agreement, 6),
                "int8_index_flips": [round(f, 6) for f in self.int8_index_flips],
                "layers": [row.to_json() for row in self.rows]}

    def markdown(self, limit: int = 40) -> list[str]:
        levels = max((len(r.index_flips) for r in self.rows), default=0)
        head = " | ".join(f"L{k + 1} flips" for k in range(levels))
        flips = ", ".join(f"L{k + 1} {100 * f:.2f}%" for k, f in enumerate(self.int8_index_flips))
        out = [f"Per-layer int8 error on {self.frames} frames: each layer alone in int8, every other in float. "
               f"All-float graph (int8 input/output) {100 * self.float_agreement:.3f}%, full int8 "
               f"{100 * self.int8_agreement:.3f}%; full int8 pooling windows whose index differs from the "
               f"all-float graph's: {flips or 'n/a'}.", "",
               f"| layer | ops | agreement alone | points lost | {head} |" if levels else
               "| layer | ops | agreement alone | points lost |",
               "|---|---:|---:|---:|" + "---:|" * levels]
        for row in self.rows[:limit]:
            cells = "".join(f" {100 * f:.2f}% |" for f in row.index_flips) + " n/a |" * (levels - len(row.index_flips))
            out.append(f"| {row.layer} | {row.ops} | {100 * row.agreement:.3f}% | {row.points:.3f} |{cells}")
        if len(self.rows) > limit:
            out.append(f"| … {len(self.rows) - limit} more in report.json | | | |" + " |" * levels)
        return out


def measure_layer_errors(units: dict[str, list[str]], quantize: Quantizer, inputs: np.ndarray,
                         reference: np.ndarray, log: Callable[[str], None] = lambda m: None) -> LayerErrorTable:
    """One quantization and one run per layer; `reference`: Keras' probabilities on `inputs`."""
    keras_labels = reference.argmax(-1)

    def agreement(run: RunResult) -> float:
        return float(np.mean(run.probabilities.argmax(-1) == keras_labels))

    every = [node for nodes in units.values() for node in nodes]
    all_float = run_flatbuffer(quantize(every), inputs, indices=True)
    full = run_flatbuffer(quantize([]), inputs, indices=True)
    base = agreement(all_float)
    rows = []
    for n, (layer, nodes) in enumerate(units.items()):
        log(f"layer error {n + 1}/{len(units)}: {layer}")
        others = [node for node in every if node not in set(nodes)]
        run = run_flatbuffer(quantize(others), inputs, indices=True)
        alone = agreement(run)
        rows.append(LayerError(layer, len(nodes), alone, 100 * (base - alone), index_flips(run, all_float)))
    rows.sort(key=lambda r: (-r.points, -sum(r.index_flips)))
    return LayerErrorTable(len(inputs), base, agreement(full), index_flips(full, all_float), rows)
