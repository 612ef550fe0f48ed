"""The payload digest: a model file damaged in copying or storage never runs silently.

Damage that lands in the weights leaves a file every structural check accepts and
every runtime runs, streaming wrong masks with nothing said. So the writer records a
SHA-256 of the payload in the segnet-edge metadata the file already carries, and
every loader compares it before the first frame.

How the digest covers the bytes that hold it: the metadata JSON is written with
`"payload_sha256": "000…0"` (64 zeros), the SHA-256 of the payload parts is taken,
and those 64 zeros are replaced by the digest's 64 hex characters in place (same
length, so no offset, length prefix or layout moves). A reader finds the recorded
field, writes the zeros back in its copy, hashes, and compares. The parts are:

- `.tflite`, `.onnx`, `.h5`: the whole file (the JSON sits verbatim in it);
- TensorRT engines: the engine file, then its `<engine>.json` sidecar;
- `.keras` (a zip whose entries carry CRCs of their own): every entry's name, length
  and content, in the archive's order (see segnet_edge.model_io).

Metadata of schema version 2 or later always holds the field (null when a file was
written unsealed, e.g. a sidecar for an engine trtexec builds on the board), so damage
to the field's name reads as damage, not as an older file. Files without it (older
segnet-edge, other tools) load with a one-line warning. The cost is one SHA-256 pass
over the file (bench/integrity.py measures it; docs/reliability.md has the number).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from segnet_edge.device.metadata import SCHEMA_VERSION, ModelMetadata

DIGEST_FIELD = "payload_sha256"
PLACEHOLDER = "0" * 64
#: What to do about a mismatch, said once for every loader.
REMEDY = "copy it again from the machine that converted it, or re-convert it with `segnet-edge convert`"
RENEW = "re-convert it with `segnet-edge convert`"


def for_writing(metadata: ModelMetadata, digest: str | None = PLACEHOLDER) -> ModelMetadata:
    """`metadata` as a writer records it: this schema version, and `digest` (the placeholder, sealed once the
    bytes exist; None: unsealed) in place of whatever digest the file it was read from carried."""
    return replace(metadata, payload_sha256=digest, schema_version=SCHEMA_VERSION)


def field_bytes(digest: str) -> bytes:
    """The field exactly as ModelMetadata.dumps writes it: `"payload_sha256": "<64 hex>"`."""
    return json.dumps({DIGEST_FIELD: digest})[1:-1].encode()


def payload_sha256(parts: Iterable[bytes]) -> str:
    """SHA-256 over the parts in order (the digest field must already read as the placeholder)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def seal(parts: Sequence[bytes]) -> list[bytes]:
    """The parts with the one placeholder field among them replaced by the parts' digest."""
    blank = field_bytes(PLACEHOLDER)
    holders = [i for i, part in enumerate(parts) if blank in part]
    if len(holders) != 1 or parts[holders[0]].count(blank) != 1:
        raise ValueError(f"expected one {DIGEST_FIELD} placeholder in the payload, found "
                         f"{sum(part.count(blank) for part in parts)}")
    digest = payload_sha256(parts)
    sealed = list(parts)
    sealed[holders[0]] = parts[holders[0]].replace(blank, field_bytes(digest))
    return sealed


def matches(parts: Sequence[bytes], recorded: str) -> bool:
    """Whether the parts hash to `recorded` with its field blanked (a field not found once is a mismatch).
    One scan for the field and one SHA-256 pass, no copy: a 30 MB file costs what hashing it costs."""
    if len(recorded) != 64 or recorded == PLACEHOLDER:
        return False
    field = field_bytes(recorded)
    found = [(i, part.find(field)) for i, part in enumerate(parts)]
    found = [(i, pos) for i, pos in found if pos >= 0]
    if len(found) != 1 or parts[found[0][0]].find(field, found[0][1] + 1) >= 0:
        return False
    holder, pos = found[0]
    digest = hashlib.sha256()
    for i, part in enumerate(parts):
        if i != holder:
            digest.update(part)
            continue
        view = memoryview(part)
        digest.update(view[:pos])
        digest.update(field_bytes(PLACEHOLDER))
        digest.update(view[pos + len(field):])
    return digest.hexdigest() == recorded


def check(path: Path, parts: Sequence[bytes], recorded: str | None, what: str = "", remedy: str = REMEDY,
          renew: str = RENEW) -> None:
    """Raise IntegrityError (one line naming the file and what to do) unless the parts match `recorded`;
    warn once on stderr when nothing is recorded. `what` adds e.g. the sidecar to the message; `remedy`
    says what to do about damage, `renew` how to get a file that carries a digest."""
    from segnet_edge.device.errors import IntegrityError

    if recorded is None:
        warn_unverified(path, renew)
        return
    if not matches(parts, recorded):
        raise IntegrityError(f"{path}{what}: damaged: its SHA-256 does not match the digest recorded when it was "
                             f"written; {remedy} (--no-verify skips this check)")


_warned: set[str] = set()


def warn_unverified(path: Path, renew: str = RENEW) -> None:
    """One line, once per file per process: the file runs, but nothing vouches for its bytes."""
    key = str(Path(path).resolve())
    if key in _warned:
        return
    _warned.add(key)
    print(f"warning: {path}: no integrity digest (written by an older segnet-edge or another tool), so damage "
          f"cannot be detected; {renew} to have it verified", file=sys.stderr, flush=True)
