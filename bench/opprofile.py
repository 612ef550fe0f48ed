"""Where the time goes inside an artifact: per-op-type profiles for TFLite and ONNX Runtime.

ONNX Runtime profiles itself (`SessionOptions.enable_profiling`): every kernel's time, after its
graph optimisations (so fused QLinearConv, and the Q/DQ nodes it could not fuse, show up as such).

The LiteRT Python interpreter has no op profiler (`benchmark_model --enable_op_profiling` is a C++
tool that is not shipped in the wheel), so each op is cut out of the flatbuffer into a one-op model
(its constant inputs kept, its other inputs fed with random values of the right type) and timed in
the same interpreter with XNNPACK, as the whole model would run it. What this cannot see: fusion
across ops inside one XNNPACK partition, and the partition boundaries themselves; the sum of the
op times is printed beside the whole model's time so the gap is visible.
"""

from __future__ import annotations

import copy
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Ops that exist only for SegNet's pooling indices and unpooling (TFLite and ONNX names).
INDEX_OPS = frozenset({
    "ARG_MAX", "ONE_HOT", "EQUAL", "SELECT_V2", "SELECT", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "REDUCE_MAX",
    "MUL", "CAST", "NOT_EQUAL", "LOGICAL_NOT", "GATHER",
    "ArgMax", "OneHot", "Equal", "Where", "SpaceToDepth", "DepthToSpace", "ReduceMax", "Mul", "QLinearMul",
    "Cast", "Not",
})  # fmt: skip


@dataclass
class OpProfile:
    """Milliseconds per op type for one artifact, one frame."""

    artifact: str
    runtime: str
    threads: int
    ms_by_op: dict[str, float] = field(default_factory=dict)
    count_by_op: dict[str, int] = field(default_factory=dict)
    whole_ms: float | None = None  # the whole model's time in the same measurement, for the gap
    note: str = ""

    @property
    def total_ms(self) -> float:
        return float(sum(self.ms_by_op.values()))

    @property
    def index_ms(self) -> float:
        """Time in the ops that only the argmax pooling / unpooling needs."""
        return float(sum(ms for op, ms in self.ms_by_op.items() if op in INDEX_OPS))

    def to_json(self) -> dict:
        return {"artifact": self.artifact, "runtime": self.runtime, "threads": self.threads,
                "ms_by_op": self.ms_by_op, "count_by_op": self.count_by_op, "total_ms": self.total_ms,
                "index_ms": self.index_ms, "whole_ms": self.whole_ms, "note": self.note}

    def to_markdown(self, top: int = 12) -> str:
        total = self.total_ms or 1.0
        lines = [f"{self.artifact} ({self.runtime}, {self.threads} thread(s)): sum of ops {self.total_ms:.1f} ms"
                 + (f", whole model {self.whole_ms:.1f} ms" if self.whole_ms else "")
                 + f"; pooling-index ops {self.index_ms:.1f} ms ({100 * self.index_ms / total:.1f}%)",
                 "", "| op | count | ms | share |", "|---|---:|---:|---:|"]
        for op, ms in sorted(self.ms_by_op.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"| {op}{' (index)' if op in INDEX_OPS else ''} | {self.count_by_op.get(op, 0)} | "
                         f"{ms:.1f} | {100 * ms / total:.1f}% |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


# --- ONNX Runtime ------------------------------------------------------------------------------


def aggregate_ort_events(events: list[dict], runs: int) -> tuple[dict[str, float], dict[str, int]]:
    """ORT profile events -> (ms per op type per run, nodes per op type)."""
    ms: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        ms[op] += event["dur"] / 1000.0 / runs
        nodes[op].add(event["name"])
    return dict(ms), {op: len(names) for op, names in nodes.items()}


def _backend_name(path: str | Path) -> str:
    """The device backend the board would run this artifact on (the registry's, by suffix)."""
    from segnet_edge.device.backends.base import backend_class

    return backend_class(path).name


def ort_profile(path: str | Path, threads: int, runs: int = 3) -> OpProfile:
    """Per-op-type time of an ONNX model on ONNX Runtime's CPU provider (after one warm-up run)."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort_profile_") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {i.name: _random_input([d if isinstance(d, int) else 1 for d in i.shape], _ort_dtype(i.type))
                for i in session.get_inputs()}
        session.run(None, feed)
        started = time.perf_counter()
        for _ in range(runs):
            session.run(None, feed)
        whole = (time.perf_counter() - started) / runs * 1000.0
        events = json.loads(Path(session.end_profiling()).read_text())
    # The first run (warm-up) is in the profile too: drop its node events.
    node_events = [e for e in events if e.get("cat") == "Node"]
    per_run = len(node_events) // (runs + 1) if node_events else 0
    ms, count = aggregate_ort_events(node_events[per_run:], runs)
    return OpProfile(Path(path).name, _backend_name(path), threads, ms, count, whole)


def _ort_dtype(type_name: str) -> np.dtype:
    return np.dtype({"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}.get(
        type_name, "float32"))


def _random_input(shape, dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    if dtype in (np.int32, np.int64):  # in these graphs: window indices 0..3
        return rng.integers(0, 4, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.normal(0.0, 1.0, size=shape).astype(dtype)


# --- TFLite ------------------------------------------------------------------------------------


def single_op_models(flatbuffer: bytes) -> list[tuple[str, bytes]]:
    """(op name, a one-op flatbuffer) for every op of subgraph 0, in execution order.

    Tensor shapes come from an allocated interpreter, not the file: a batch-None Keras model stores
    batch-1 placeholders (e.g. [1, 4, C] for what runs as [N*h*w, 4, C]) that only allocation resolves.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.tools import flatbuffer_utils

    resolved = Interpreter(model_content=flatbuffer,
                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    resolved.allocate_tensors()
    shapes = {d["index"]: [int(v) for v in d["shape"]] for d in resolved.get_tensor_details()}
    del resolved

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    names = {}
    for index, code in enumerate(model.operatorCodes):
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        names[index] = next((k for k, v in vars(schema.BuiltinOperator).items() if v == builtin), str(builtin))
    out = []
    for op in graph.operators:
        used = [t for t in [*op.inputs, *op.outputs] if t >= 0]
        mapping = {old: new for new, old in enumerate(dict.fromkeys(used))}
        one = schema.ModelT()
        one.version, one.operatorCodes, one.description = model.version, model.operatorCodes, b"op"
        one.buffers = [schema.BufferT()]
        sub = schema.SubGraphT()
        sub.tensors, sub.inputs = [], []
        for old in mapping:
            tensor = copy.copy(graph.tensors[old])
            if old in shapes:
                tensor.shape = np.asarray(shapes[old], dtype=np.int32)
                tensor.shapeSignature = None
            buffer = model.buffers[tensor.buffer] if tensor.buffer else None
            if buffer is not None and buffer.data is not None and len(buffer.data):
                one.buffers.append(buffer)
                tensor.buffer = len(one.buffers) - 1
            else:
                tensor.buffer = 0
                if old in op.inputs:
                    sub.inputs.append(mapping[old])
            sub.tensors.append(tensor)
        sub.outputs = [mapping[t] for t in op.outputs if t >= 0]
        single = copy.copy(op)
        single.inputs = [mapping[t] if t >= 0 else -1 for t in op.inputs]
        single.outputs = [mapping[t] for t in op.outputs if t >= 0]
        sub.operators = [single]
        one.subgraphs = [sub]
        out.append((names[op.opcodeIndex], bytes(flatbuffer_utils.convert_object_to_bytearray(one))))
    return out


def tflite_profile(path: str | Path, threads: int, runs: int = 3) -> OpProfile:
    """Per-op-type time of a .tflite model, each op timed alone in LiteRT with XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter

    content = Path(path).read_bytes()
    ms: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for name, single in single_op_models(content):
        interpreter = Interpreter(model_content=single, num_threads=threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        started = time.perf_counter()
        for _ in range(runs):
            interpreter.invoke()
        ms[name] += (time.perf_counter() - started) / runs * 1000.0
        count[name] += 1
    whole = Interpreter(model_path=str(path), num_threads=threads)
    whole.allocate_tensors()
    detail = whole.get_input_details()[0]
    whole.set_tensor(detail["index"], _random_input(detail["shape"], detail["dtype"]))
    whole.invoke()
    started = time.perf_counter()
    for _ in range(runs):
        whole.invoke()
    whole_ms = (time.perf_counter() - started) / runs * 1000.0
    return OpProfile(Path(path).name, _backend_name(path), threads, dict(ms), dict(count), whole_ms,
                     note="each op timed alone (one-op models): fusion inside XNNPACK partitions is not seen")
