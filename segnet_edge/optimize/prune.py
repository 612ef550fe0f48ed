"""Magnitude and N:M structured pruning with tfmot, fine-tuned on the data, saved as a plain model.

Why a clone function that wraps only kernels: tfmot's `prune_low_magnitude(model)`
refuses any layer outside its registry, and segnet-edge's argmax pooling, unpooling
and LRN have no weights at all. Cloning the model and wrapping just the layers that
hold a kernel lets those layers take part unchanged (nothing to prune, nothing to
declare), keeps batch norm dense (it folds into the conv at export; pruning its
scale would zero whole channels by accident) and keeps the classifier dense unless
asked: it is the smallest conv and the one whose every weight decides a class.

The file written is a normal segnet-edge model (`strip_pruning` removes wrappers,
masks and step counters): `segnet_edge.load_model` reads it, and the zeros are real
zeros in the kernels, which gzip and 2:4 sparse tensor cores can use.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from segnet_edge._tf import keras
from segnet_edge.atomic import write_text_atomic
from segnet_edge.device.errors import UsageError
from segnet_edge.optimize._tfmot import tfmot
from segnet_edge.optimize.config import PruneConfig
from segnet_edge.optimize.report import (
    FileSize,
    SparsitySummary,
    check_m_by_n,
    file_size,
    format_sparsity_table,
    human_bytes,
    sparsity_summary,
)

_sparsity = tfmot.sparsity.keras

#: Layer types whose kernel is pruned (tfmot's registry supports each).
PRUNABLE_TYPES = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


@dataclass
class PruneReport:
    model: str
    out: str
    config: dict
    sparsity_before: SparsitySummary
    sparsity_after: SparsitySummary
    size_before: FileSize
    size_after: FileSize
    miou_before: float
    miou_after: float
    pattern_violations: dict[str, int] | None = None  # N:M only: violating groups per kernel
    classifier: str = ""
    kept_dense: dict[str, str] = field(default_factory=dict)  # kernel -> why it was not pruned
    steps: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    @property
    def target_reached(self) -> bool:
        """The pruned kernels hold the asked share of zeros (N:M: the pattern holds)."""
        if self.pattern_violations is not None:
            return self.pattern_ok is True
        return abs(self.sparsity_after.pruned_sparsity - float(self.config["target_sparsity"])) <= 0.01

    @property
    def pattern_ok(self) -> bool | None:
        return None if self.pattern_violations is None else not any(self.pattern_violations.values())

    def to_json(self) -> dict:
        return {
            "model": self.model, "out": self.out, "config": self.config, "classifier": self.classifier,
            "kept_dense": self.kept_dense,
            "target_sparsity": self.config.get("target_sparsity"),
            "achieved_sparsity": round(self.sparsity_after.pruned_sparsity, 6),
            "overall_sparsity": round(self.sparsity_after.overall_sparsity, 6),
            "target_reached": self.target_reached,
            "pattern_ok": self.pattern_ok, "pattern_violations": self.pattern_violations,
            "miou_before": self.miou_before, "miou_after": self.miou_after,
            "size_before": self.size_before.to_json(), "size_after": self.size_after.to_json(),
            "sparsity_before": self.sparsity_before.to_json(), "sparsity_after": self.sparsity_after.to_json(),
            "steps": self.steps, "seconds": round(self.seconds, 2), "history": self.history,
        }


def report_path(out: str | Path, kind: str) -> Path:
    """`pruned.h5` -> `pruned.prune.json`: the report sits beside the model it describes."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}.json")


def classifier_name(model: keras.Model) -> str:
    """The last kernel layer before the output: SegNet's `block1_conv1_D`, SegNet-Basic's `conv_classifier`."""
    names = [layer.name for layer in model.layers if isinstance(layer, PRUNABLE_TYPES)]
    if not names:
        raise UsageError(f"{model.name}: has no Conv2D or Dense layer to prune; is it a segnet-edge model?")
    return names[-1]


def kept_dense(model: keras.Model, prune_classifier: bool = False,
               m_by_n: tuple[int, int] | None = None) -> dict[str, str]:
    """Kernel layers left dense, each with the reason.

    The classifier stays dense unless asked. With an N:M pattern, kernels whose
    input channels are not a multiple of M (the first conv's 3 colour channels) stay
    dense too: the sparse tensor cores cannot run them sparse, so pruning them would
    cost accuracy for nothing.
    """
    classifier = classifier_name(model)
    reasons = {}
    for layer in model.layers:
        if not isinstance(layer, PRUNABLE_TYPES):
            continue
        c_in = int(layer.get_weights()[0].shape[-2])
        if layer.name == classifier and not prune_classifier:
            reasons[layer.name] = "the classifier (--prune-classifier prunes it)"
        elif m_by_n and c_in % m_by_n[1]:
            reasons[layer.name] = f"{c_in} input channels, not a multiple of {m_by_n[1]}: no sparse kernel runs it"
    return reasons


def pruning_targets(model: keras.Model, prune_classifier: bool = False,
                    m_by_n: tuple[int, int] | None = None) -> list[str]:
    """Kernel layers to prune: every Conv2D / Dense that `kept_dense` does not hold back."""
    dense = kept_dense(model, prune_classifier, m_by_n)
    return [layer.name for layer in model.layers if isinstance(layer, PRUNABLE_TYPES) and layer.name not in dense]


def make_schedule(target: float, total_steps: int, ramp: float = 0.5) -> _sparsity.PruningSchedule:
    """Sparsity rises (cubic, tfmot's PolynomialDecay) over the first `ramp` of the steps, then holds.

    tfmot counts training steps from 1 (the wrapper increments its step before it
    updates the mask). The rest of the fine-tuning repairs the damage of the last
    pruning step at a fixed mask. With fewer than 4 steps there is no room for a ramp:
    prune once, at the first step, and fine-tune. (N:M masks ignore the schedule:
    tfmot sets them once, at step 1.)
    """
    if total_steps < 4:
        return _sparsity.ConstantSparsity(target, begin_step=1, end_step=1, frequency=1)
    ramp_steps = min(max(2, int(total_steps * ramp)), total_steps - 1)
    frequency = max(1, ramp_steps // 10)
    end_step = 1 + frequency * (ramp_steps // frequency)  # the target is reached only on a pruning step
    return _sparsity.PolynomialDecay(0.0, target, begin_step=1, end_step=end_step, frequency=frequency)


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy (new variables): wrapping shares layers, and the caller's model must stay as it was."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def wrap_for_pruning(model: keras.Model, targets: list[str], schedule: _sparsity.PruningSchedule,
                     m_by_n: tuple[int, int] | None = None) -> keras.Model:
    """A copy of `model` in which only the `targets` layers are wrapped by `prune_low_magnitude`.

    The other layers (custom pooling / unpooling / LRN, batch norm, the classifier)
    pass through the clone as they are, with their weights.
    """
    wanted = set(targets)
    kwargs = {"sparsity_m_by_n": m_by_n} if m_by_n else {}

    def clone(layer):
        if layer.name in wanted:
            return _sparsity.prune_low_magnitude(layer, pruning_schedule=schedule, **kwargs)
        return layer

    return keras.models.clone_model(copy_model(model), clone_function=clone)


def prune_model(model: keras.Model, train_ds, steps_per_epoch: int, epochs: int, loss, optimizer,
                target: float, m_by_n: tuple[int, int] | None = None, ramp: float = 0.5,
                prune_classifier: bool = False, callbacks: list | None = None, verbose: int = 0):
    """Wrap, fine-tune with the pruning step callback, strip: returns (pruned model, targets, history)."""
    targets = pruning_targets(model, prune_classifier, m_by_n)
    schedule = make_schedule(target, steps_per_epoch * epochs, ramp)
    wrapped = wrap_for_pruning(model, targets, schedule, m_by_n)
    wrapped.compile(optimizer=optimizer, loss=loss)
    history = wrapped.fit(train_ds, epochs=epochs, verbose=verbose,
                          callbacks=[_sparsity.UpdatePruningStep(), *(callbacks or [])])
    stripped = _sparsity.strip_pruning(wrapped)
    return stripped, targets, history.history


def prune(config: PruneConfig) -> PruneReport:
    """Prune `config.model` as asked, fine-tune on `config.data`, save to `config.out` with a JSON report beside."""
    from segnet_edge.losses import WeightedPixelCrossEntropy
    from segnet_edge.model_io import save_model
    from segnet_edge.optimize.common import history_rows, start_finetuning
    from segnet_edge.train import evaluate_miou, make_optimizer, make_schedule

    config.validate()
    started = time.perf_counter()
    model, metadata, data, train_ds, steps = start_finetuning(config, "prune")
    norm = metadata.normalization
    miou_before = evaluate_miou(model, data.val, data.info, norm, config.batch_size)
    targets = pruning_targets(model, config.prune_classifier, config.m_by_n)
    before = sparsity_summary(model, set(targets))
    if config.verbose:
        pattern = f"{config.structured} structured" if config.structured else f"{config.target_sparsity:.0%}"
        print(f"pruning {len(targets)} kernels to {pattern} over {config.epochs} epochs x {steps} steps "
              f"(classifier {classifier_name(model)} {'pruned' if config.prune_classifier else 'kept dense'})",
              file=sys.stderr)
    pruned, targets, history = prune_model(
        model, train_ds, steps, config.epochs,
        WeightedPixelCrossEntropy(data.class_weights, data.info.ignore_label),
        make_optimizer(config.optimizer, make_schedule(config.lr_schedule, config.lr, steps * config.epochs), 0.9, 0.0),
        config.target_sparsity, config.m_by_n,
        config.ramp, config.prune_classifier, verbose=2 if config.verbose else 0)
    after = sparsity_summary(pruned, set(targets))
    violations = None
    if config.m_by_n:
        keep, block = config.m_by_n[1] - config.m_by_n[0], config.m_by_n[1]
        violations = check_m_by_n(pruned, keep, block, set(targets))
    miou_after = evaluate_miou(pruned, data.val, data.info, norm, config.batch_size)
    out = save_model(pruned, config.out, metadata)
    report = PruneReport(
        model=str(config.model), out=str(out), config=config.to_json(), sparsity_before=before,
        sparsity_after=after, size_before=file_size(config.model), size_after=file_size(out),
        miou_before=float(miou_before), miou_after=float(miou_after), pattern_violations=violations,
        classifier=classifier_name(model), kept_dense=kept_dense(model, config.prune_classifier, config.m_by_n),
        steps=steps * config.epochs, seconds=time.perf_counter() - started,
        history=history_rows(history),
    )
    write_text_atomic(report_path(out, "prune"), json.dumps(report.to_json(), indent=2))
    return report


def format_report(report: PruneReport) -> str:
    """Per-layer table, then totals: sparsity, parameters, file sizes raw and gzip, validation mIoU."""
    before, after = report.sparsity_before, report.sparsity_after
    lines = [f"{report.model} -> {report.out}"]
    lines += format_sparsity_table(before, after)
    target = report.config.get("structured") or f"{report.config.get('target_sparsity', 0):.0%}"
    lines.append("")
    lines.append(f"{'target':<22}{target}")
    lines.append(f"{'achieved (targets)':<22}{100 * after.pruned_sparsity:.2f}% of "
                 f"{sum(layer.params for layer in after.layers if layer.pruned):,} kernel weights")
    lines.append(f"{'overall':<22}{100 * after.overall_sparsity:.2f}% of {after.total_params:,} parameters "
                 f"({after.total_params - after.kernel_zeros:,} non-zero)")
    if report.pattern_violations is not None:
        bad = sum(report.pattern_violations.values())
        lines.append(f"{'pattern check':<22}{'ok: every group' if not bad else f'{bad} violating groups'} "
                     f"({report.config.get('structured')} along input channels)")
    lines.append(f"{'file size':<22}{human_bytes(report.size_before.raw)} -> {human_bytes(report.size_after.raw)}")
    lines.append(f"{'gzip size':<22}{human_bytes(report.size_before.gzip)} -> {human_bytes(report.size_after.gzip)}"
                 f" ({report.size_before.gzip / max(report.size_after.gzip, 1):.2f}x smaller)")
    for name, reason in report.kept_dense.items():
        lines.append(f"{'kept dense':<22}{name}: {reason}")
    lines.append(f"{'val mIoU':<22}{100 * report.miou_before:.2f} -> {100 * report.miou_after:.2f}"
                 f" ({100 * (report.miou_after - report.miou_before):+.2f} points)")
    lines.append(f"report: {report_path(report.out, 'prune')}")
    return "\n".join(lines)
