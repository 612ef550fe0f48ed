"""`segnet-edge prune --channels`: remove whole filters, rebuild a smaller dense model, fine-tune, save.

Magnitude and 2:4 pruning make files smaller, but no runtime we ship to runs a 50%-sparse dense
kernel faster; removing filters does, on every runtime. The coupled groups and the surgery live in
channels.py; this module is the command's flow: load (as every fine-tuning does), plan, cut,
re-estimate batch norm statistics, fine-tune (optimize.common.finetune, shared with QAT), re-estimate
them again, record the new widths in the metadata (so
`convert`, `evaluate`, `profile` and the board take the model like any other) and report.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace

from segnet_edge.atomic import write_text_atomic
from segnet_edge.optimize.config import PruneConfig
from segnet_edge.optimize.report import FileSize, file_size, human_bytes


@dataclass
class ChannelPruneReport:
    model: str
    out: str
    config: dict
    plan: dict  # channels.ChannelPlan.to_json(): every group, its convs, width before and kept
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    size_before: FileSize
    size_after: FileSize
    miou_before: float
    miou_pruned: float  # right after the cut (batch norm statistics re-estimated), before fine-tuning
    miou_after: float
    steps: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    @property
    def mac_ratio(self) -> float:
        return self.macs_after / max(self.macs_before, 1)

    def to_json(self) -> dict:
        return {"model": self.model, "out": self.out, "config": self.config, "kind": "channels",
                "plan": self.plan, "macs_before": self.macs_before, "macs_after": self.macs_after,
                "mac_ratio": round(self.mac_ratio, 6), "params_before": self.params_before,
                "params_after": self.params_after, "size_before": self.size_before.to_json(),
                "size_after": self.size_after.to_json(), "miou_before": self.miou_before,
                "miou_pruned": self.miou_pruned, "miou_after": self.miou_after, "steps": self.steps,
                "seconds": round(self.seconds, 2), "history": self.history}


def recalibrate_batch_norm(model, dataset, max_batches: int = 64) -> int:
    """Re-estimate every batch norm's moving mean and variance on `dataset` (forward passes, no training).

    Cutting a conv's input channels shifts its output statistics, so the batch norms after it
    normalise with stale moving averages in inference; a short fine-tune does not fix them either
    (momentum 0.99 forgets slowly). Each batch's statistics are averaged with equal weight
    (momentum 1 - 1/k at batch k), as "adaptive BN" does after pruning (Li et al. 2020, EagleEye).
    Returns the batches used.
    """
    from segnet_edge._tf import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    count = 0
    try:
        for count, batch in enumerate(dataset.take(max_batches), start=1):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in norms:
                layer.momentum = 1.0 - 1.0 / count
            model(images, training=True)  # eager: each call reads the momentum set just above
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return count


def prune_channels(config: PruneConfig) -> ChannelPruneReport:
    """Channel-prune `config.model` by `config.channels`, fine-tune on `config.data`, save to `config.out`."""
    from segnet_edge.model_io import save_model
    from segnet_edge.models import count_macs
    from segnet_edge.optimize.channels import apply_plan, channel_graph, plan_pruning
    from segnet_edge.optimize.common import finetune, history_rows, start_finetuning
    from segnet_edge.optimize.prune import report_path
    from segnet_edge.train import evaluate_miou

    config.validate()
    if config.channels is None:
        raise ValueError("prune_channels needs config.channels")
    started = time.perf_counter()
    model, metadata, data, train_ds, steps = start_finetuning(config, "prune")
    graph = channel_graph(model)
    plan = plan_pruning(model, float(config.channels), config.criterion, graph, config.channel_multiple)  # one line if a group would empty
    pruned = apply_plan(model, plan, graph)
    norm = metadata.normalization
    if config.verbose:
        print(f"channel pruning: {len(plan.groups)} groups, {config.channels:.0%} of each group's filters removed "
              f"(ranked by {config.criterion}); {count_macs(model) / 1e6:.1f} -> {count_macs(pruned) / 1e6:.1f} "
              f"MMAC per frame; fine-tuning {config.epochs} epochs x {steps} steps", file=sys.stderr)
    miou_before = evaluate_miou(model, data.val, data.info, norm, config.batch_size)
    recalibrate_batch_norm(pruned, train_ds)
    miou_pruned = evaluate_miou(pruned, data.val, data.info, norm, config.batch_size)
    history = finetune(pruned, train_ds, data, config, steps)
    recalibrate_batch_norm(pruned, train_ds)
    miou_after = evaluate_miou(pruned, data.val, data.info, norm, config.batch_size)
    widths = plan.widths()
    metadata = replace(metadata, widths=tuple((layer.name, widths[layer.name]) for layer in pruned.layers
                                              if layer.name in widths))
    out = save_model(pruned, config.out, metadata)
    report = ChannelPruneReport(
        model=str(config.model), out=str(out), config=config.to_json(), plan=plan.to_json(),
        macs_before=count_macs(model), macs_after=count_macs(pruned), params_before=int(model.count_params()),
        params_after=int(pruned.count_params()), size_before=file_size(config.model), size_after=file_size(out),
        miou_before=float(miou_before), miou_pruned=float(miou_pruned), miou_after=float(miou_after),
        steps=steps * config.epochs, seconds=time.perf_counter() - started, history=history_rows(history))
    write_text_atomic(report_path(out, "prune"), json.dumps(report.to_json(), indent=2))
    return report


def format_report(report: ChannelPruneReport) -> str:
    """Per group: its convs and width before -> after; then MACs, parameters, file size and validation mIoU."""
    from segnet_edge.optimize.prune import report_path

    lines = [f"{report.model} -> {report.out}", f"{'group':<18}{'channels':>12}  convs"]
    for group in report.plan["groups"]:
        lines.append(f"{group['name']:<18}{group['width']:>5} -> {group['kept']:<4}  {', '.join(group['convs'])}")
    lines.append("")
    lines.append(f"{'removed':<22}{report.config['channels']:.0%} of every group's filters (ranked by "
                 f"{report.config['criterion']})")
    lines.append(f"{'MACs per frame':<22}{report.macs_before / 1e6:,.1f} M -> {report.macs_after / 1e6:,.1f} M "
                 f"({report.mac_ratio:.3f}x)")
    lines.append(f"{'parameters':<22}{report.params_before:,} -> {report.params_after:,} "
                 f"({report.params_after / max(report.params_before, 1):.3f}x)")
    lines.append(f"{'file size':<22}{human_bytes(report.size_before.raw)} -> {human_bytes(report.size_after.raw)}")
    lines.append(f"{'val mIoU':<22}{100 * report.miou_before:.2f} -> {100 * report.miou_pruned:.2f} cut -> "
                 f"{100 * report.miou_after:.2f} after {report.config['epochs']} fine-tuning epochs "
                 f"({100 * (report.miou_after - report.miou_before):+.2f} points)")
    lines.append(f"report: {report_path(report.out, 'prune')}")
    return "\n".join(lines)
