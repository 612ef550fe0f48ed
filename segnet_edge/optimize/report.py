"""What an optimisation achieved, measured: per-layer sparsity, N:M pattern checks, file sizes raw and gzip.

numpy only (models are read through `layer.weights`), so the numbers mean the same
for a float, pruned or quantization-aware model: wrappers (tfmot's prune and
quantize wrappers) are looked through to the kernel they hold.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Weight attributes that hold a layer's multiply-accumulate weights (what pruning removes).
KERNEL_ATTRS = ("kernel", "depthwise_kernel")


@dataclass
class LayerSparsity:
    """One kernel: how many of its weights are exactly zero."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    zeros: int
    pruned: bool  # was it a pruning target

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "shape": list(self.shape), "sparsity": round(self.sparsity, 6)}


@dataclass
class SparsitySummary:
    layers: list[LayerSparsity]
    total_params: int  # every weight of the model, biases and batch norm included

    @property
    def kernel_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def kernel_zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers)

    @property
    def pruned_sparsity(self) -> float:
        """Zeros over the kernels that were pruning targets: what the schedule aimed at."""
        params = sum(layer.params for layer in self.layers if layer.pruned)
        return sum(layer.zeros for layer in self.layers if layer.pruned) / params if params else 0.0

    @property
    def kernel_sparsity(self) -> float:
        return self.kernel_zeros / self.kernel_params if self.kernel_params else 0.0

    @property
    def overall_sparsity(self) -> float:
        """Zeros over every weight (kept-dense classifier, biases and BN included)."""
        return self.kernel_zeros / self.total_params if self.total_params else 0.0

    def by_name(self) -> dict[str, LayerSparsity]:
        return {layer.name: layer for layer in self.layers}

    def to_json(self) -> dict:
        return {"layers": [layer.to_json() for layer in self.layers], "total_params": self.total_params,
                "kernel_params": self.kernel_params, "kernel_zeros": self.kernel_zeros,
                "pruned_sparsity": round(self.pruned_sparsity, 6), "kernel_sparsity": round(self.kernel_sparsity, 6),
                "overall_sparsity": round(self.overall_sparsity, 6)}


#: tfmot's wrappers: each holds the real Keras layer in `.layer`.
WRAPPERS = ("PruneLowMagnitude", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeAnnotate")


def unwrap(layer):
    """The Keras layer inside tfmot's wrappers, else the layer itself."""
    while type(layer).__name__ in WRAPPERS:
        layer = layer.layer
    return layer


def _short_name(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def _is_bookkeeping(weight) -> bool:
    """tfmot's own variables: pruning masks / thresholds / steps, quantizer ranges and steps."""
    name = _short_name(weight)
    return name in ("mask", "threshold", "pruning_step", "optimizer_step") or name.endswith(("_min", "_max"))


def kernel_of(layer) -> np.ndarray | None:
    """The multiply-accumulate weights of a (possibly wrapped) layer, or None for weightless layers.

    Read from the (outer) layer's variables, not the `kernel` attribute: inside a QAT
    wrapper that attribute is the last fake-quantized copy, not the variable.
    """
    for weight in layer.weights:
        if _short_name(weight) in KERNEL_ATTRS:
            return np.asarray(weight.numpy())
    return None


def _param_count(model) -> int:
    """The model's own weights (biases and batch norm included), without tfmot's masks and quantizer ranges."""
    return sum(int(np.prod(weight.shape)) for layer in model.layers for weight in layer.weights
               if not _is_bookkeeping(weight))


def sparsity_summary(model, pruned: set[str] | frozenset[str] = frozenset()) -> SparsitySummary:
    """Exact zeros per kernel; `pruned` names (inner layer names) the pruning targets."""
    layers = []
    for layer in model.layers:
        kernel = kernel_of(layer)
        if kernel is None:
            continue
        inner = unwrap(layer)
        layers.append(LayerSparsity(inner.name, type(inner).__name__, tuple(int(v) for v in kernel.shape),
                                    int(kernel.size), int(kernel.size - np.count_nonzero(kernel)), inner.name in pruned))
    return SparsitySummary(layers, _param_count(model))


def m_by_n_violations(kernel: np.ndarray, keep: int = 2, block: int = 4) -> int:
    """Groups of `block` consecutive input-channel weights holding more than `keep` non-zeros.

    Conv kernels are (kh, kw, c_in, c_out): the groups run along c_in for each
    (kh, kw, c_out), as TensorRT's sparse kernels and tfmot's m_by_n lay them out.
    Dense kernels are (c_in, c_out). A c_in that is not a multiple of `block` ends in a
    shorter group, which the same limit applies to.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim < 2:
        raise ValueError(f"a kernel has at least 2 axes (got shape {kernel.shape})")
    c_in = kernel.shape[-2]
    rows = np.moveaxis(kernel, -2, -1).reshape(-1, c_in)  # (kh*kw*c_out, c_in)
    pad = (-c_in) % block
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    groups = (rows != 0).reshape(rows.shape[0], -1, block).sum(axis=-1)
    return int((groups > keep).sum())


def check_m_by_n(model, keep: int, block: int, names: set[str] | frozenset[str] | None = None) -> dict[str, int]:
    """Violating groups per kernel (only `names` when given); all zeros means the pattern holds everywhere."""
    found = {}
    for layer in model.layers:
        kernel = kernel_of(layer)
        inner = unwrap(layer)
        if kernel is None or (names is not None and inner.name not in names):
            continue
        found[inner.name] = m_by_n_violations(kernel, keep, block)
    return found


@dataclass
class FileSize:
    path: str
    raw: int
    gzip: int

    def to_json(self) -> dict:
        return asdict(self)


def gzip_size(path: str | Path, level: int = 9) -> int:
    """Bytes after DEFLATE at `level` (what `gzip -9` stores, less its ~20-byte header), streamed in chunks."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip container
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def file_size(path: str | Path) -> FileSize:
    path = Path(path)
    return FileSize(str(path), path.stat().st_size, gzip_size(path))


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_sparsity_table(before: SparsitySummary | None, after: SparsitySummary, last: str = "target") -> list[str]:
    """One row per kernel: shape, parameters, sparsity before -> after, then `last`.

    `last="target"`: whether the kernel was a pruning target; `last="kept"`: whether it
    still has every zero it had before (prune-preserving QAT).
    """
    old = before.by_name() if before else {}
    width = max([len(layer.name) for layer in after.layers] + [5]) + 2
    lines = [f"{'layer':<{width}}{'shape':>18}{'params':>10}{'before':>9}{'after':>9}  {last}"]
    for layer in after.layers:
        shape = "x".join(str(v) for v in layer.shape)
        prior = old.get(layer.name)
        prior_text = f"{100 * prior.sparsity:.1f}%" if prior else "-"
        if last == "target":
            tail = "yes" if layer.pruned else "no (kept dense)"
        else:
            tail = "-" if prior is None else ("yes" if layer.zeros >= prior.zeros else "NO")
        lines.append(f"{layer.name:<{width}}{shape:>18}{layer.params:>10}{prior_text:>9}"
                     f"{100 * layer.sparsity:>8.1f}%  {tail}")
    return lines


@dataclass(frozen=True)
class TFLiteOp:
    """One operator of a .tflite graph with the dtypes of what it reads and writes."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def is_float(self) -> bool:
        """Computes in float (QUANTIZE / DEQUANTIZE only convert at a float boundary and do not count)."""
        if self.name in ("QUANTIZE", "DEQUANTIZE"):
            return False
        return "float32" in self.inputs or "float32" in self.outputs


def tflite_ops(content: bytes) -> list[TFLiteOp]:
    """Every operator of a .tflite model as the interpreter sees it, without delegates (which would hide ops)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # the host may have only TensorFlow's copy
        from segnet_edge._tf import tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    interpreter = Interpreter(model_content=content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():  # the only per-op listing the interpreter offers
        ops.append(TFLiteOp(op["op_name"], tuple(dtypes[i] for i in op["inputs"] if i >= 0),
                            tuple(dtypes[i] for i in op["outputs"] if i >= 0)))
    return ops


def tflite_int8_weight_sparsity(content: bytes) -> float:
    """Share of exactly-zero int8 conv weights in a .tflite model (what survives into the artifact)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from segnet_edge._tf import tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    zeros = total = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D" or len(op["inputs"]) < 2:
            continue
        weights = interpreter.get_tensor(op["inputs"][1])
        if weights.dtype == np.int8:
            zeros += int(weights.size - np.count_nonzero(weights))
            total += int(weights.size)
    return zeros / total if total else 0.0
