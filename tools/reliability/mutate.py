"""Seeded damage to files: what a bad copy, a flaky SD card or a hand-edited model does to bytes.

- `truncate`: cut at a random offset (an interrupted download or copy).
- `flip`: 1-16 random bits flipped anywhere (mostly weights in a model file).
- `flip-edges`: 1-16 bits flipped in the first or last 64 KiB, where file formats
  keep their headers, tables and indices, so more cases reach the parsers.
- `index` (TFLite only): one operator input/output or tensor buffer index
  rewritten to another in-range value, so the file passes bounds checks and
  reaches the runtime: the damage that crashed LiteRT when we measured it.

The same seed always gives the same cases, so a failure can be replayed.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence

BYTE_KINDS = ("truncate", "flip", "flip-edges")
EDGE = 64 * 1024


def _flip(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """One damaged copy of `data`."""
    if not data:
        return data
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    copy = bytearray(data)
    if kind == "flip":
        _flip(copy, rng, 0, len(copy))
    elif kind == "flip-edges":
        if rng.random() < 0.5:
            _flip(copy, rng, 0, min(len(copy), EDGE))
        else:
            _flip(copy, rng, max(0, len(copy) - EDGE), len(copy))
    elif kind == "index":
        _swap_index(copy, rng)
    else:
        raise ValueError(f"unknown mutation {kind!r}")
    return bytes(copy)


def cases(data: bytes, count: int, seed: int, kinds: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """`count` (kind, damaged bytes) pairs, kinds taken in turn, reproducible from `seed`."""
    rng = random.Random(seed)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        yield kind, mutate(data, kind, rng)


def _swap_index(data: bytearray, rng: random.Random) -> None:
    """Point one operator input/output (or a tensor's buffer) at another valid index, in place."""
    from segnet_edge.device.backends.tflite_file import MODEL, OPERATOR, SUBGRAPH, TENSOR, FlatBuffer

    walker = FlatBuffer(bytes(data))
    model = walker.root()
    buffers = walker.vector(model, MODEL["buffers"], 4, "buffers")[1]
    subgraph = walker.tables(model, MODEL["subgraphs"], "subgraphs")[0]
    tensors = walker.tables(subgraph, SUBGRAPH["tensors"], "tensors")
    operators = walker.tables(subgraph, SUBGRAPH["operators"], "operators")
    if rng.random() < 0.8 and operators:
        operator = rng.choice(operators)
        start, length = walker.vector(operator, OPERATOR[rng.choice(("inputs", "outputs"))], 4, "indices")
        if length:
            struct.pack_into("<i", data, start + 4 * rng.randrange(length), rng.randrange(-1, len(tensors)))
            return
    field = walker.field(rng.choice(tensors), TENSOR["buffer"], "buffer")
    if field is not None and buffers:
        struct.pack_into("<I", data, field, rng.randrange(buffers))
