"""Channel (filter) pruning that respects SegNet's pooling indices: which convs must shrink together.

A conv's output channels can be removed only where every tensor carrying them shrinks alike.
The groups are read from the model's graph, not from a table, so SegNet and SegNet-Basic (and
any width a model was built or already pruned to) are handled by one rule:

- a *channel space* starts at each conv's output and flows unchanged through batch norm, ReLU
  and both outputs of argmax pooling (values and indices are per channel);
- an unpooling layer joins the space of its values with the space of its indices: pool i's
  indices were recorded per channel, so the tensor unpool i scatters must hold the same channels
  in the same order;
- a *group* is every conv whose output lies in one joined space: one decision (which channels
  stay) is made per group, and applied to each member's filters, its batch norm, and the input
  channels of every conv that reads the space.

What that gives (level i = pool i / unpool i; "x -> y" means y reads x's channels):

SegNet (VGG16), per level i = 1..4: {block{i}_conv{last}, block{i+1}_conv1_D} -- the encoder conv
that feeds pool i and the decoder conv that ends level i+1 and feeds unpool i; level 5:
{block5_conv3} alone (unpool 5 scatters pool 5's own values). Every other conv is a group of one.

SegNet-Basic, per level i = 1..3: {conv{i}, conv_decode{i+1}}; level 4: {conv4};
conv_decode1 is a group of one.

Never pruned: the image input (the first conv's input channels) and the classifier's outputs
(any space that reaches the model output), nor a space that passes a cross-channel layer (LRN).

"Removed channels zeroed" (`zero_removed`), the float model a pruned one must reproduce exactly:
for each removed channel of each group member, the kernel's filter and bias are 0 and its batch
norm's gamma and beta are 0, so the channel is exactly 0 after BN (whatever its mean and variance),
after ReLU, after pooling (index 0 of a window of zeros) and after unpooling; the convs reading it
then add nothing from it, which is what dropping their input channel does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segnet_edge._tf import keras
from segnet_edge.device.errors import UsageError
from segnet_edge.layers import ClassLabels, LocalResponseNormalization, MaxPoolingWithArgmax2D, MaxUnpooling2D
from segnet_edge.vocabulary import CHANNEL_CRITERIA, DEFAULT_CHANNEL_CRITERION

#: How filters are ranked: L1 norm of the conv filter (Li et al. 2017), or |gamma| of the batch norm after
#: it (Liu et al. 2017, Network Slimming). Default: what kept more mIoU in a measurement (docs/pruning.md).
CRITERIA, DEFAULT_CRITERION = CHANNEL_CRITERIA, DEFAULT_CHANNEL_CRITERION

#: Layers a channel passes through unchanged, index by index.
_CHANNELWISE = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation, keras.layers.Dropout,
                MaxPoolingWithArgmax2D)
#: Layers that mix channels without weights: their space cannot shrink.
_CROSS_CHANNEL = (LocalResponseNormalization, keras.layers.Softmax, ClassLabels)


@dataclass(frozen=True)
class ChannelGroup:
    """Convs whose output channels are one set: pruned by one decision."""

    name: str  # the pooling level that ties them ("block3_pool", "pool2"), else the single conv's name
    convs: tuple[str, ...]
    width: int

    def to_json(self) -> dict:
        return {"name": self.name, "convs": list(self.convs), "width": self.width}


@dataclass
class ChannelGraph:
    """The model's convs and batch norms, each with the channel space it reads and writes."""

    groups: list[ChannelGroup]
    conv_in: dict[str, int]  # conv -> space of its input channels
    conv_out: dict[str, int]  # conv -> space of its output channels
    bn: dict[str, int]  # batch norm -> space
    bn_after: dict[str, str]  # conv -> the batch norm that reads its output directly
    frozen: set[int] = field(default_factory=set)  # spaces never pruned (input, classifier, cross-channel)
    group_of_space: dict[int, str] = field(default_factory=dict)


class _Spaces:
    """Union-find over channel spaces."""

    def __init__(self) -> None:
        self.parent: list[int] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def join(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
        return min(a, b)


def _tensors(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def channel_graph(model: keras.Model) -> ChannelGraph:
    """Trace `model` (a segnet-edge float model) into channel spaces and coupled groups."""
    spaces = _Spaces()
    space_of: dict[int, int] = {}  # id(KerasTensor) -> space
    frozen_raw: list[int] = []
    conv_in, conv_out, bn, bn_after, pools = {}, {}, {}, {}, {}
    producer: dict[int, str] = {}
    for tensor in model.inputs:
        space_of[id(tensor)] = spaces.new()
        frozen_raw.append(space_of[id(tensor)])
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs, outputs = _tensors(layer.input), _tensors(layer.output)
        try:
            ins = [space_of[id(t)] for t in inputs]
        except KeyError:
            raise UsageError(f"layer {layer.name!r}: its input is not traced; channel pruning takes segnet-edge "
                             "models only") from None
        if type(layer) is keras.layers.Conv2D and layer.groups == 1:
            out = spaces.new()
            conv_in[layer.name], conv_out[layer.name] = ins[0], out
        elif isinstance(layer, MaxUnpooling2D):
            out = spaces.join(ins[0], ins[1])
        elif isinstance(layer, _CHANNELWISE):
            out = ins[0]
            if isinstance(layer, keras.layers.BatchNormalization):
                bn[layer.name] = ins[0]
                if producer.get(id(inputs[0])) in conv_out:
                    bn_after[producer[id(inputs[0])]] = layer.name
            if isinstance(layer, MaxPoolingWithArgmax2D):
                pools.setdefault(ins[0], layer.name)
        elif isinstance(layer, _CROSS_CHANNEL):
            frozen_raw.extend(ins)
            out = spaces.new()
            frozen_raw.append(out)
        else:
            raise UsageError(f"layer {layer.name!r} ({type(layer).__name__}): channel pruning knows SegNet's layers "
                             "only; is it a segnet-edge model?")
        for tensor in outputs:
            space_of[id(tensor)] = out
            producer[id(tensor)] = layer.name
    frozen_raw.extend(space_of[id(t)] for t in model.outputs)
    frozen = {spaces.find(s) for s in frozen_raw}
    level: dict[int, str] = {}  # the pooling level that ties a space: its pool's name
    for space, name in pools.items():
        level.setdefault(spaces.find(space), name)
    members: dict[int, list[str]] = {}
    for name, out in conv_out.items():
        members.setdefault(spaces.find(out), []).append(name)
    widths = {layer.name: int(layer.filters) for layer in model.layers if layer.name in conv_out}
    groups, group_of_space = [], {}
    for root, convs in members.items():
        if root in frozen:
            continue
        name = level.get(root, convs[0])
        groups.append(ChannelGroup(name, tuple(convs), widths[convs[0]]))
        group_of_space[root] = name
    return ChannelGraph(groups, {k: spaces.find(v) for k, v in conv_in.items()},
                        {k: spaces.find(v) for k, v in conv_out.items()}, {k: spaces.find(v) for k, v in bn.items()},
                        bn_after, frozen, group_of_space)


def channel_groups(model: keras.Model) -> list[ChannelGroup]:
    """The coupled groups of `model`, in graph order (see the module docstring)."""
    return channel_graph(model).groups


def kept_count(width: int, ratio: float, multiple: int = 1) -> int:
    """Channels a group of `width` keeps when `ratio` of them go: rounded to the nearest, then to the nearest
    multiple of `multiple` (at least one multiple, at most `width`). 0 means the ratio empties the group.

    Why a multiple: 2:4 sparse kernels need input channels in fours (prune 2:4 keeps other convs dense), and
    int8 kernels (XNNPACK, TensorRT) run channel counts in blocks of 4 to 32 best.
    """
    count = int(round(width * (1.0 - ratio)))
    if count < 1 or multiple <= 1:
        return count
    return min(width, max(multiple, multiple * int(round(count / multiple))))


def filter_scores(model: keras.Model, graph: ChannelGraph, group: ChannelGroup, criterion: str) -> np.ndarray:
    """One importance per channel of `group`: each member's scores over their mean, averaged over members.

    Dividing by the mean puts a member with large weights and one with small weights on the same
    footing, so neither decides the shared channels alone.
    """
    if criterion not in CRITERIA:
        raise UsageError(f"unknown --criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    total = np.zeros(group.width, dtype=np.float64)
    for name in group.convs:
        if criterion == "bn" and name in graph.bn_after:
            scores = np.abs(model.get_layer(graph.bn_after[name]).gamma.numpy().astype(np.float64))
        else:
            kernel = model.get_layer(name).kernel.numpy().astype(np.float64)
            scores = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
        total += scores / max(float(scores.mean()), 1e-12)
    return total / len(group.convs)


@dataclass
class ChannelPlan:
    """Which channels each group keeps (ascending indices: the order pooling recorded them in)."""

    ratio: float
    criterion: str
    keep: dict[str, np.ndarray]  # group name -> kept channel indices
    groups: list[ChannelGroup]
    multiple: int = 1

    def widths(self) -> dict[str, int]:
        """conv name -> output channels after pruning (every conv of every group)."""
        return {conv: int(len(self.keep[g.name])) for g in self.groups for conv in g.convs}

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "criterion": self.criterion, "multiple": self.multiple,
                "groups": [{**g.to_json(), "kept": int(len(self.keep[g.name]))} for g in self.groups]}


def plan_pruning(model: keras.Model, ratio: float, criterion: str = DEFAULT_CRITERION,
                 graph: ChannelGraph | None = None, multiple: int = 1) -> ChannelPlan:
    """Keep the best `kept_count` channels of every group; one-line error if one would keep none."""
    if not 0.0 < ratio < 1.0:
        raise UsageError(f"--channels must be between 0 and 1, exclusive, e.g. 0.5 (got {ratio})")
    graph = graph or channel_graph(model)
    if not graph.groups:
        raise UsageError(f"{model.name}: no conv whose channels can be pruned; is it a segnet-edge model?")
    keep = {}
    for group in graph.groups:
        count = kept_count(group.width, ratio, multiple)
        if count < 1:
            raise UsageError(f"--channels {ratio:g} would leave group {group.name} ({', '.join(group.convs)}: "
                             f"{group.width} channels) with none; use a ratio below "
                             f"{1 - 0.5 / group.width:.3g}")
        order = np.argsort(-filter_scores(model, graph, group, criterion), kind="stable")
        keep[group.name] = np.sort(order[:count])
    return ChannelPlan(ratio, criterion, keep, graph.groups, multiple)


def _space_keep(graph: ChannelGraph, plan: ChannelPlan, space: int) -> np.ndarray | None:
    """Kept indices of a space; None: all (a frozen space)."""
    name = graph.group_of_space.get(space)
    return None if name is None else plan.keep[name]


def _sliced_weights(model: keras.Model, graph: ChannelGraph, plan: ChannelPlan) -> dict[str, list[np.ndarray]]:
    sliced = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in graph.conv_out:
            keep_in = _space_keep(graph, plan, graph.conv_in[layer.name])
            keep_out = _space_keep(graph, plan, graph.conv_out[layer.name])
            kernel = weights[0]
            if keep_in is not None:
                kernel = kernel[:, :, keep_in, :]
            if keep_out is not None:
                kernel = kernel[..., keep_out]
            rest = [w if keep_out is None else w[keep_out] for w in weights[1:]]
            sliced[layer.name] = [kernel, *rest]
        elif layer.name in graph.bn:
            keep = _space_keep(graph, plan, graph.bn[layer.name])
            sliced[layer.name] = [w if keep is None else w[keep] for w in weights]
        else:
            raise UsageError(f"layer {layer.name!r} has weights channel pruning cannot slice")
    return sliced


def apply_plan(model: keras.Model, plan: ChannelPlan, graph: ChannelGraph | None = None) -> keras.Model:
    """The smaller dense model: the same graph with each conv's `filters` cut to the plan, weights sliced.

    Rebuilt from the model's own config (as models.with_unpool_mode does), so every layer
    stays as it is but for its width; `build_model` with the plan's widths builds the same network.
    """
    from segnet_edge.layers import CUSTOM_OBJECTS

    graph = graph or channel_graph(model)
    config = model.get_config()
    widths = plan.widths()
    for layer in config["layers"]:
        if layer["class_name"] == "Conv2D" and layer["config"]["name"] in widths:
            layer["config"]["filters"] = widths[layer["config"]["name"]]
    pruned = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
    for name, weights in _sliced_weights(model, graph, plan).items():
        pruned.get_layer(name).set_weights(weights)
    return pruned


def zero_removed(model: keras.Model, plan: ChannelPlan, graph: ChannelGraph | None = None) -> keras.Model:
    """A copy of `model` with the plan's removed channels zeroed (filter, bias, BN gamma and beta: see the
    module docstring): the float network `apply_plan`'s model must reproduce."""
    graph = graph or channel_graph(model)
    zeroed = keras.models.clone_model(model)
    zeroed.set_weights(model.get_weights())
    for group in plan.groups:
        removed = np.setdiff1d(np.arange(group.width), plan.keep[group.name])
        for name in group.convs:
            conv = zeroed.get_layer(name)
            weights = conv.get_weights()
            weights[0][..., removed] = 0.0
            for w in weights[1:]:
                w[removed] = 0.0
            conv.set_weights(weights)
            if name in graph.bn_after:
                norm = zeroed.get_layer(graph.bn_after[name])
                gamma, beta, mean, variance = norm.get_weights()
                gamma[removed], beta[removed] = 0.0, 0.0
                norm.set_weights([gamma, beta, mean, variance])
    return zeroed
