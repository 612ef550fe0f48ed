"""One interface for every inference runtime, and the registry that picks one for a model file.

Polygraphy's shape: a `Backend` is a runner over one artifact. `activate()` /
`deactivate()` (or `with backend:`) own the expensive runtime objects;
`infer()` checks the input against the artifact's metadata, calls the small
`infer_impl()` each runtime writes, and records `inference_time` itself, so a
millisecond means the same thing in every backend. Runtime modules are
imported inside `activate_impl()`, so a missing TensorRT costs nothing until used.
"""

from __future__ import annotations

import abc
import importlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from segnet_edge.device.artifact_check import check_artifact, probe_in_child
from segnet_edge.device.errors import DataError, ModelFileError, UsageError
from segnet_edge.device.metadata import ModelMetadata
from segnet_edge.device.postprocess import Segmentation, label_map, postprocess
from segnet_edge.device.preprocess import dequantize, preprocess, quantize

#: Backend modules in this package; each registers its class when imported (cheap: no runtime import).
BUILTIN_BACKENDS = ("litert", "onnxruntime", "tensorrt")

_REGISTRY: dict[str, type[Backend]] = {}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype of one model input or output, as the runtime reports it."""

    name: str
    shape: tuple[int | None, ...]  # None for a dynamic dimension
    dtype: str

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class BackendOptions:
    """Runtime knobs shared by the backends; each uses those that apply to it."""

    threads: int | None = None  # CPU threads (LiteRT/XNNPACK, ONNX Runtime intra-op); None = runtime default
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers; None = best available
    device: int = 0  # CUDA device for TensorRT
    verify: bool = True  # compare the payload digest before loading (False: --no-verify, starts faster)

    def to_json(self) -> dict:
        return {"threads": self.threads, "providers": None if self.providers is None else list(self.providers),
                "device": self.device, "verify": self.verify}


class Backend(abc.ABC):
    """A runner over one artifact: activate, infer many frames, deactivate."""

    name: ClassVar[str]

    # --- the file format this backend owns (registry part: backends/<format>_file.py) -------
    suffixes: ClassVar[tuple[str, ...]]  # file suffixes, lower case, that pick this backend
    file_format: ClassVar[str]  # what the files are: "tflite", "onnx", "engine"
    min_bytes: ClassVar[int] = 1  # a smaller file is a truncated copy

    @classmethod
    def check_file(cls, path: Path) -> None:
        """Static checks of the file's bytes before a runtime sees them; one-line ModelFileError.
        The default checks nothing beyond `min_bytes` (an engine is opaque to Python)."""
        return None

    @classmethod
    @abc.abstractmethod
    def read_metadata_json(cls, path: Path) -> bytes | None:
        """The segnet-edge metadata JSON the artifact carries, None when it has none."""

    @classmethod
    def payload_files(cls, path: Path) -> list[Path]:
        """The files the payload digest covers, in order (the artifact, and any file beside it)."""
        return [Path(path)]

    # --- end of the file format part ---------------------------------------------------------

    def __init__(self, path: str | Path, metadata: ModelMetadata, options: BackendOptions | None = None):
        self.path = Path(path)
        self.metadata = metadata
        self.options = options or BackendOptions()
        self.is_active = False
        self.inference_time: float | None = None  # seconds spent in the last infer_impl()
        self.released_bytes = 0  # the mapped model file's resident bytes dropped after loading (LiteRT)
        self._expected = expected_input(metadata)

    # --- what each backend writes ---------------------------------------------------------
    @abc.abstractmethod
    def activate_impl(self) -> None:
        """Open the runtime and the model; raise ModelFileError / UsageError with one line on failure."""

    @abc.abstractmethod
    def deactivate_impl(self) -> None:
        """Release what activate_impl() acquired."""

    @abc.abstractmethod
    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        """Run one checked input batch; return the model's first output as a numpy array."""

    @abc.abstractmethod
    def get_input_metadata_impl(self) -> TensorSpec:
        """The runtime's own view of the model input."""

    @abc.abstractmethod
    def get_output_metadata_impl(self) -> TensorSpec:
        """The runtime's own view of the model output."""

    def describe(self) -> str:
        """One line naming the runtime, its version and settings (for reports)."""
        return self.name

    def child_probe(self) -> tuple[str, list[str]] | None:
        """(python code, argv) that loads the artifact and runs one frame, for runtimes that can crash
        with a signal on damaged files; activate() runs it in a child process first. None: load in process."""
        return None

    # --- shared behaviour -----------------------------------------------------------------
    def activate(self) -> Backend:
        if self.is_active:
            raise RuntimeError(f"{self.name} backend for {self.path} is already active")
        probe = self.child_probe()
        if probe is not None:
            probe_in_child(self.path, self.name, *probe)
        self.activate_impl()
        self.is_active = True
        try:
            self._check_model_io()
        except BaseException:
            self.deactivate()
            raise
        return self

    def deactivate(self) -> None:
        if not self.is_active:
            return
        self.is_active = False
        self.deactivate_impl()

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    def get_input_metadata(self) -> TensorSpec:
        self._require_active()
        return self.get_input_metadata_impl()

    def get_output_metadata(self) -> TensorSpec:
        self._require_active()
        return self.get_output_metadata_impl()

    @property
    def expected_input(self) -> TensorSpec:
        """The input the metadata promises: (1, H, W, 3) in the model's input dtype."""
        return self._expected

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Check `x` against the metadata, run it, and time the runtime call alone."""
        self._require_active()
        expected = self._expected
        if tuple(x.shape) != expected.shape or x.dtype != np.dtype(expected.dtype):
            raise DataError(
                f"{self.path.name}: input {tuple(x.shape)} {x.dtype} does not match the model's "
                f"{expected.shape} {expected.dtype}; preprocess frames with segnet_edge.device.preprocess"
            )
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        start = time.perf_counter()
        out = self.infer_impl(x)
        self.inference_time = time.perf_counter() - start
        return out

    # --- running frames: the one way a frame goes through an artifact (issue #24) ----------------------
    # frame -> prepare_input (preprocess + quantize_input) -> infer -> to_scores | to_labels | to_segmentation.
    # Every caller (the board's pipeline, evaluate, convert's parity, the benches) composes these steps, so the
    # artifact's quantization is applied in one place. Only infer() needs an active backend: the other steps
    # read the metadata alone, so a capture or output thread may call them beside the inference loop.

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float model input(s) (..., H, W, 3) made by THE preprocessing -> the artifact's input dtype, with
        the input quantization its metadata states (float models: float32, unchanged)."""
        return quantize(x, self.metadata.input_quantization)

    def prepare_input(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 BGR frame of any size -> the (1, H, W, 3) batch `infer()` takes."""
        m = self.metadata
        return self.quantize_input(preprocess(frame, m.input_size, m.normalization)[None])

    def to_scores(self, raw: np.ndarray) -> np.ndarray:
        """An `infer()` output -> float32: probabilities dequantized with the metadata's output quantization
        (a label-map output, --output labels, comes back as float labels)."""
        return dequantize(raw, self.metadata.output_quantization)

    def to_labels(self, raw: np.ndarray) -> np.ndarray:
        """An `infer()` output (N, H, W, C) scores or (N, H, W) labels -> (N, H, W) uint8 labels. The argmax
        runs on the raw output: dequantization has a positive scale and cannot change the winner."""
        return label_map(raw)

    def to_segmentation(self, raw: np.ndarray, frame_size: tuple[int, int]) -> Segmentation:
        """An `infer()` output of batch 1 -> the `Segmentation` of a frame of `frame_size` (height, width)."""
        return postprocess(raw, self.metadata, frame_size)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Float model inputs (N, H, W, 3) made by THE preprocessing -> float outputs (N, H, W, C) probabilities,
        or (N, H, W) labels, one frame at a time (the board's batch is 1)."""
        return np.concatenate([self.to_scores(self.infer(self.quantize_input(x[None]))) for x in inputs])

    def segment(self, frame: np.ndarray) -> Segmentation:
        """One uint8 BGR frame of any size -> its `Segmentation`: `.labels` (H, W) uint8 at the model's size,
        `.frame_labels` at the frame's, `.class_fractions`, `.confidence`; what an application embeds."""
        return self.to_segmentation(self.infer(self.prepare_input(frame)), frame.shape[:2])

    # --- end of running frames -------------------------------------------------------------------------

    def _require_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name} backend is not active; use `with backend:` or call activate()")

    def _check_model_io(self) -> None:
        """Refuse an artifact whose tensors disagree with its own metadata, before any frame runs."""
        actual = self.get_input_metadata_impl()
        expected = self._expected
        if not _shape_matches(actual.shape, expected.shape) or actual.dtype != expected.dtype:
            raise ModelFileError(
                f"{self.path}: model input {list(actual.shape)} {actual.dtype} disagrees with its metadata "
                f"({list(expected.shape)} {expected.dtype}); re-export it with `segnet-edge convert`"
            )
        out = self.get_output_metadata_impl()
        height, width = self.metadata.input_size
        want: tuple[int, ...] = (1, height, width)
        if self.metadata.output == "probabilities":
            want = (*want, self.metadata.num_classes)
        if not _shape_matches(out.shape, want):
            raise ModelFileError(
                f"{self.path}: model output {list(out.shape)} disagrees with its metadata ({list(want)}, "
                f"{self.metadata.output}); re-export it with `segnet-edge convert`"
            )


def expected_input(metadata: ModelMetadata) -> TensorSpec:
    height, width = metadata.input_size
    return TensorSpec("image", (1, height, width, 3), metadata.input_quantization.dtype)


def _shape_matches(actual: tuple[int | None, ...], expected: tuple[int, ...]) -> bool:
    return len(actual) == len(expected) and all(a is None or a == e for a, e in zip(actual, expected))


def check_quantization(path: Path, what: str, scale: float, zero_point: int, expected) -> None:
    """An integer tensor's scale / zero point must be the ones the metadata states."""
    if not expected.is_integer:
        return
    if not math.isclose(scale, expected.scale, rel_tol=1e-5) or int(zero_point) != int(expected.zero_point):
        raise ModelFileError(
            f"{path}: {what} quantization (scale {scale:.6g}, zero point {zero_point}) disagrees with its "
            f"metadata (scale {expected.scale:.6g}, zero point {expected.zero_point}); re-export it"
        )


# --- registry: backend names, file suffixes and formats, read from the backend classes ------


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available by its `name` and file `suffixes`."""
    _REGISTRY[cls.name] = cls
    return cls


def available_backends() -> dict[str, type[Backend]]:
    """Every registered backend, importing the built-in modules (which import no runtime) once; the built-in
    ones first, in BUILTIN_BACKENDS order whatever order they were imported in, then any others."""
    modules = [f"segnet_edge.device.backends.{module}" for module in BUILTIN_BACKENDS]
    for module in modules:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(modules)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: rank.get(item[1].__module__, len(rank))))


def backend_names() -> tuple[str, ...]:
    """Every backend's name, in registration order (what --backend offers)."""
    return tuple(available_backends())


def artifact_suffixes() -> tuple[str, ...]:
    """Every suffix a backend runs, lower case (what a folder of artifacts contributes)."""
    return tuple(suffix for cls in available_backends().values() for suffix in cls.suffixes)


def backend_for_file(path: str | Path) -> type[Backend] | None:
    """The backend registered for the file's suffix, None when no backend runs such files."""
    suffix = Path(path).suffix.lower()
    return next((cls for cls in available_backends().values() if suffix in cls.suffixes), None)


def file_format(path: str | Path) -> str | None:
    """"tflite", "onnx", "engine"...: the format a file's suffix says it is, None for a non-artifact."""
    cls = backend_for_file(path)
    return None if cls is None else cls.file_format


def is_artifact(path: str | Path) -> bool:
    """A file a device backend runs (by its suffix)."""
    return backend_for_file(path) is not None


def payload_files(path: str | Path) -> list[Path]:
    """The files an artifact's payload digest covers (an engine's sidecar after the engine)."""
    cls = backend_for_file(path)
    return [Path(path)] if cls is None else cls.payload_files(Path(path))


def damaged(path: str | Path) -> str | None:
    """Why the file cannot be an artifact of its format (too small, the format's static check), else None.
    Metadata and payload digest are not looked at: that is artifact_check.check_artifact."""
    path = Path(path)
    cls = backend_for_file(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror or exc}); check the path"
    suffix = path.suffix.lower()
    if size < (cls.min_bytes if cls is not None else 1):
        return (f"{path}: {size} bytes is too small for a {suffix or 'model'} file "
                "(truncated copy?); copy or re-export it")
    if cls is not None:
        try:
            cls.check_file(path)
        except ModelFileError as exc:
            return str(exc)
    return None


def backend_class(path: str | Path, name: str | None = None) -> type[Backend]:
    """The backend `name` names, else the one registered for the file's suffix."""
    registry = available_backends()
    if name is not None:
        if name not in registry:
            raise UsageError(f"unknown backend {name!r}; use one of {', '.join(sorted(registry))}")
        return registry[name]
    cls = backend_for_file(path)
    if cls is not None:
        return cls
    suffix = Path(path).suffix.lower()
    raise ModelFileError(
        f"{path}: no backend for {suffix or 'a file without extension'!r}; give one of "
        f"{', '.join(sorted(artifact_suffixes()))} or choose one with --backend"
    )


def load_backend(path: str | Path, name: str | None = None, options: BackendOptions | None = None) -> Backend:
    """Check an artifact (artifact_check, its payload digest unless options.verify is off) and return its
    (not yet active) backend. Every board-side loader comes through here."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path")
    cls = backend_class(path, name)
    options = options or BackendOptions()
    return cls(path, check_artifact(path, verify=options.verify), options)
