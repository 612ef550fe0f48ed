"""Quantization-aware training (tfmot default 8-bit scheme) of the whole SegNet, custom layers included.

Why QAT rather than calibration alone: fake-quantized forward passes let the weights
adapt to int8 rounding, and the ranges learnt on the training data travel in the file,
so `convert` makes an int8 TFLite (and a QDQ ONNX) from this model with no
representative dataset. The activation ranges are learnt symmetric by default (`--activations`):
zero point 0 is the only int8 TensorRT takes, so its QDQ graph can keep the ranges QAT trained with
instead of being calibrated afresh into symmetric ranges the model never trained with.

How the custom layers take part: each is annotated with the QuantizeConfig of
`quantize_configs.py` before `quantize_annotate_model` annotates the built-in layers,
so `quantize_apply` wraps every layer (the test checks no layer is left out).

Why the unpooling is switched to "select" (equal + where): it is the only form the
TFLite int8 quantizer keeps integer; with "onehot" the mask, the mul and the conv
after every unpooling stay float.

On a pruned model the prune-preserving scheme (tfmot collaborative optimisation)
masks each weight quantizer with the kernel's zeros, so the sparsity survives QAT;
the report compares the zeros before and after, layer by layer.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace

from segnet_edge._tf import keras
from segnet_edge.atomic import write_text_atomic
from segnet_edge.optimize._tfmot import tfmot
from segnet_edge.optimize.config import QATConfig
from segnet_edge.optimize.quantize_configs import quantize_config_for, quantize_scope
from segnet_edge.optimize.report import (
    FileSize,
    SparsitySummary,
    file_size,
    format_sparsity_table,
    human_bytes,
    sparsity_summary,
    unwrap,
)

_qk = tfmot.quantization.keras

#: A model with at least this share of exactly-zero kernel weights counts as pruned ("auto").
SPARSE_MODEL_THRESHOLD = 0.01


@dataclass
class LayerQuantization:
    """How one layer of the QAT model is quantized."""

    name: str
    kind: str
    config: str  # the QuantizeConfig class, "" when the layer is not wrapped (it would stay float)
    weights_quantized: list[str] = field(default_factory=list)
    output_quantized: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "config": self.config,
                "weights_quantized": self.weights_quantized, "output_quantized": self.output_quantized}


@dataclass
class QATReport:
    model: str
    out: str
    config: dict
    preserve_sparsity: bool
    unpool_mode: str
    layers: list[LayerQuantization]
    sparsity_before: SparsitySummary
    sparsity_after: SparsitySummary
    size_before: FileSize
    size_after: FileSize
    miou_float: float
    miou_qat: float
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    @property
    def unquantized_layers(self) -> list[str]:
        return [layer.name for layer in self.layers if not layer.config]

    @property
    def sparsity_kept(self) -> bool:
        """Every kernel has at least the zeros it came in with."""
        after = self.sparsity_after.by_name()
        return all(after[layer.name].zeros >= layer.zeros for layer in self.sparsity_before.layers
                   if layer.name in after)

    def to_json(self) -> dict:
        return {
            "model": self.model, "out": self.out, "config": self.config,
            "preserve_sparsity": self.preserve_sparsity, "unpool_mode": self.unpool_mode,
            "miou_float": self.miou_float, "miou_qat": self.miou_qat,
            "unquantized_layers": self.unquantized_layers, "sparsity_kept": self.sparsity_kept,
            "kernel_sparsity_before": round(self.sparsity_before.kernel_sparsity, 6),
            "kernel_sparsity_after": round(self.sparsity_after.kernel_sparsity, 6),
            "size_before": self.size_before.to_json(), "size_after": self.size_after.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
            "sparsity_before": self.sparsity_before.to_json(), "sparsity_after": self.sparsity_after.to_json(),
            "seconds": round(self.seconds, 2), "history": self.history,
        }


def annotate(model: keras.Model) -> keras.Model:
    """A copy of `model` with every layer annotated: custom layers with segnet-edge's configs, the rest by tfmot."""
    from segnet_edge.optimize.prune import copy_model

    def clone(layer):
        config = quantize_config_for(layer)
        return layer if config is None else _qk.quantize_annotate_layer(layer, quantize_config=config)

    with quantize_scope():
        return _qk.quantize_annotate_model(keras.models.clone_model(copy_model(model), clone_function=clone))


def is_sparse(model: keras.Model) -> bool:
    return sparsity_summary(model).kernel_sparsity >= SPARSE_MODEL_THRESHOLD


def make_qat_model(model: keras.Model, preserve_sparsity: bool = False, symmetric: bool = False) -> keras.Model:
    """The quantization-aware model (fake-quant wrappers everywhere); `model` itself is left untouched."""
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity
              else _qk.default_8bit.Default8BitQuantizeScheme())
    annotated = annotate(model)
    with quantize_scope():
        qat = _qk.quantize_apply(annotated, scheme)
    if symmetric:
        symmetric_activation_ranges(qat)
    return qat


def symmetric_activation_ranges(qat_model: keras.Model) -> int:
    """Make every activation quantizer (input, ReLU outputs, the classifier's logits) learn a range
    symmetric about zero; returns how many. Weights are symmetric per channel in tfmot already.

    Why after `quantize_apply` and not through a QuantizeConfig: annotating the ReLUs ourselves would stop
    tfmot's conv + BN + ReLU pattern from matching, and a fake-quant would land between BN and ReLU. The
    flag is read only while ranges are learnt; the saved file carries the learnt ranges, whose zero point
    is 0 (what `model_io.qat_activation_ranges_symmetric` checks), so the model converts from them as
    trained (tfmot's configs do not serialise the flag; a QAT model is never trained further here).
    """
    changed = 0
    for layer in qat_model.layers:
        quantizers = [layer.quantizer] if type(layer).__name__ == "QuantizeLayer" else []  # the input's
        quantizers += list(getattr(layer, "_output_quantizers", None) or [])
        quantizers += [activation.quantizer for activation in getattr(layer, "_quantize_activations", [])]
        for quantizer in quantizers:
            if getattr(quantizer, "symmetric", True) is False:
                quantizer.symmetric = True
                changed += 1
    return changed


def quantization_layout(qat_model: keras.Model) -> list[LayerQuantization]:
    """Per layer: its QuantizeConfig, which weights get a quantizer and whether its output gets one."""
    layers = []
    for layer in qat_model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind == "QuantizeLayer":
            layers.append(LayerQuantization(layer.name, kind, "input quantizer", [], True))
            continue
        config = getattr(layer, "quantize_config", None)
        inner = unwrap(layer)
        if config is None:
            layers.append(LayerQuantization(inner.name, type(inner).__name__, ""))
            continue
        # the attribute names (after build, `layer.kernel` is the fake-quantized tensor, not a variable)
        weights = list(getattr(config, "weight_attrs", []))
        layers.append(LayerQuantization(inner.name, type(inner).__name__, type(config).__name__, weights,
                                        bool(config.get_output_quantizers(inner))))
    return layers


def quantize(config: QATConfig) -> QATReport:
    """QAT-fine-tune `config.model` on `config.data`; save the QAT model and a JSON report beside it."""
    from segnet_edge.model_io import save_model
    from segnet_edge.models import with_unpool_mode
    from segnet_edge.optimize.common import finetune, history_rows, start_finetuning
    from segnet_edge.optimize.prune import report_path
    from segnet_edge.train import evaluate_miou

    config.validate()
    started = time.perf_counter()
    model, metadata, data, train_ds, steps_per_epoch = start_finetuning(config, "quantize")
    norm = metadata.normalization
    model = with_unpool_mode(model, config.unpool_mode)
    metadata = replace(metadata, unpool_mode=config.unpool_mode)
    before = sparsity_summary(model)
    sparse = before.kernel_sparsity >= SPARSE_MODEL_THRESHOLD
    preserve = sparse if config.preserve_sparsity == "auto" else config.preserve_sparsity == "on"
    if config.verbose:
        state = f"{100 * before.kernel_sparsity:.1f}% of kernel weights are zero"
        how = "prune-preserving QAT" if preserve else "QAT"
        print(f"{how} ({state}), unpooling '{config.unpool_mode}', {config.activations} activation ranges, "
              f"{config.epochs} epochs", file=sys.stderr)
    miou_float = evaluate_miou(model, data.val, data.info, norm, config.batch_size)
    qat = make_qat_model(model, preserve, symmetric=config.activations == "symmetric")
    layout = quantization_layout(qat)
    history = finetune(qat, train_ds, data, config, steps_per_epoch)
    miou_qat = evaluate_miou(qat, data.val, data.info, norm, config.batch_size)
    after = sparsity_summary(qat)
    out = save_model(qat, config.out, metadata)
    report = QATReport(
        model=str(config.model), out=str(out), config=config.to_json(), preserve_sparsity=preserve,
        unpool_mode=config.unpool_mode, layers=layout, sparsity_before=before, sparsity_after=after,
        size_before=file_size(config.model), size_after=file_size(out), miou_float=float(miou_float),
        miou_qat=float(miou_qat), seconds=time.perf_counter() - started,
        history=history_rows(history),
    )
    write_text_atomic(report_path(out, "quantize"), json.dumps(report.to_json(), indent=2))
    return report


def format_report(report: QATReport) -> str:
    lines = [f"{report.model} -> {report.out}"]
    wrapped = [layer for layer in report.layers if layer.config]
    weights = sum(1 for layer in report.layers if layer.weights_quantized)
    lines.append(f"quantized layers: {len(wrapped)} of {len(report.layers)} "
                 f"({weights} with int8 weights; custom layers: "
                 + ", ".join(sorted({f'{layer.kind}={layer.config}' for layer in report.layers
                                     if layer.config.endswith(('SameScaleQuantizeConfig', 'OutputQuantizeConfig'))}))
                 + ")")
    if report.unquantized_layers:
        lines.append(f"NOT quantized (stay float): {', '.join(report.unquantized_layers)}")
    if report.sparsity_before.kernel_zeros:
        lines.append("")
        lines += format_sparsity_table(report.sparsity_before, report.sparsity_after, last="kept")
        kept = "kept" if report.sparsity_kept else "LOST"
        lines.append(f"sparsity {100 * report.sparsity_before.kernel_sparsity:.2f}% -> "
                     f"{100 * report.sparsity_after.kernel_sparsity:.2f}% ({kept}; prune-preserving: "
                     f"{'yes' if report.preserve_sparsity else 'no'})")
    lines.append(f"{'file size':<14}{human_bytes(report.size_before.raw)} -> {human_bytes(report.size_after.raw)}"
                 f" (gzip {human_bytes(report.size_before.gzip)} -> {human_bytes(report.size_after.gzip)}; "
                 "the int8 saving appears at convert)")
    activations = report.config.get("activations", "asymmetric")
    lines.append(f"{'activations':<14}{activations} ranges" + (" (zero point 0: convert builds TensorRT's QDQ graph "
                 "from them)" if activations == "symmetric" else " (all 8 bits after a ReLU; TensorRT's QDQ graph is "
                 "calibrated afresh at convert)"))
    lines.append(f"{'val mIoU':<14}{100 * report.miou_float:.2f} float -> {100 * report.miou_qat:.2f} QAT "
                 f"(fake-quant, {100 * (report.miou_qat - report.miou_float):+.2f} points)")
    from segnet_edge.optimize.prune import report_path

    lines.append(f"report: {report_path(report.out, 'quantize')}")
    return "\n".join(lines)
