"""What `convert` is asked to do and what it must achieve; the defaults live here and only here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from segnet_edge.device.errors import UsageError
from segnet_edge.vocabulary import OUTPUTS

IO_DTYPES = ("int8", "uint8", "float32")  # float32: only around a mixed-precision graph (--keep-float and co.)
TRT_INT8_MODES = ("qdq", "calibrator")
#: How each activation's int8 range is picked from the calibration frames (`--onnx-calib`, `--tflite-calib`).
#: Percentile clips the rare outliers that would otherwise stretch the range of a whole tensor: on the
#: demo model 99.99 raised QDQ agreement with Keras from 94.1% to 95.6% (99.9 clipped too much: 94.8%,
#: mIoU -1.2). ONNX Runtime's entropy (KL) calibrator, measured later on other frames: 96.12% against
#: percentile's 96.28% and min/max's 95.64%. TFLite int8 on the demo model, 8 test frames: min/max 97.13%,
#: percentile 99.99 97.41% (99.999: 97.41%, 99.9: 97.34%); 40 test frames: 96.84% -> 97.28%.
RANGE_METHODS = ("minmax", "percentile")
#: ONNX opset: TensorRT 8.5+ parses up to 17 (onnx-tensorrt docs/operators.md), 8.2/8.4 up to 13.
DEFAULT_OPSET = 17
LEGACY_TRT_OPSET = 13


@dataclass(frozen=True)
class Targets:
    """What each artifact must prove against the Keras model on held-out frames (docs/int8-accuracy.md says why).

    int8 is held to what a user acts on: the mIoU, and the argmax on the pixels Keras is sure of (top-2
    probability margin >= parity.CONFIDENT_MARGIN). All-pixel agreement is reported, not gated, for int8 and
    fp16: SegNet's 2-bit pooling indices flip inside near-tie 2x2 windows on class edges under any rounding
    (measured on a SegNet trained on real CamVid, 233 held-out frames: int8 mIoU moved +0.04 to +0.06 points
    while confident-pixel agreement was 99.40% / 98.91% / 99.43% for TFLite / QDQ / ORT-only).
    """

    float_agreement: float = 0.999  # fp32: all-pixel argmax agreement (the same float function)
    fp16_confident_agreement: float = 0.995  # fp16: argmax agreement on the confident pixels
    int8_confident_agreement: float = 0.985  # int8: argmax agreement on the confident pixels
    int8_miou_points: float = 1.0  # |mIoU(artifact) - mIoU(Keras)| in points, when labels exist
    int8_tflite_size_ratio: float = 0.27  # size(model_int8.tflite) / size(model_fp32.tflite)
    # ...claimed from this float size on: below it the graph, biases and per-channel scales outweigh the kernels
    # (a 32x48 SegNet-Basic at alpha 0.25, 0.38 MB in fp32, is 0.30x in int8)
    size_ratio_min_bytes: int = 1_000_000

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ConvertOptions:
    formats: tuple[str, ...] = ("all",)
    io_dtype: str = "int8"  # int8 TFLite input/output type (float32 only with mixed precision)
    output: str = "probabilities"  # or "labels": argmax inside the model, a uint8 (H, W) label map out
    batch: int = 1  # static batch of the ONNX graphs and engines (TFLite is always batch 1)
    opset: int | None = None  # None: DEFAULT_OPSET, or LEGACY_TRT_OPSET when --trt-version is below 8.5
    trt_version: str = "8.6"  # the target's TensorRT: picks the unpool form, opset and parser check
    trt_int8: str = "qdq"  # int8 engine from the QDQ graph, or from model.onnx + entropy calibrator
    workspace_mib: int = 1024  # TensorRT builder workspace limit
    sparsity: bool = False  # let TensorRT use 2:4 sparse weights (pruned models, Ampere/Orin)
    input_size: tuple[int, int] | None = None  # export at another size than the model was trained at
    calib_count: int | None = None  # --calib-data: frames to use (None: up to 200, fewer if the source has fewer)
    calib_split: str = "train"
    onnx_calib: str = "percentile"  # QDQ activation ranges: ONNX Runtime's percentile or min/max calibrator
    onnx_calib_percentile: float = 99.99
    tflite_calib: str = "percentile"  # int8 TFLite activation ranges: percentile (convert/tflite_ranges.py) or min/max
    tflite_calib_percentile: float = 99.99
    equalize: bool = True  # equalize activation ranges (same float function) before building from calibration
    eval_split: str = "val"
    parity_frames: int = 64  # held-out frames each artifact is compared on: the whole split up to this cap
    seed: int = 0
    unsafe_load: bool = False
    # Mixed precision, int8 TFLite (convert/precision_search.py; the QDQ/ORT graphs take keep_float only)
    keep_float: tuple[str, ...] = ()  # Keras layers left in float
    layer_error: bool = False  # measure each layer's int8 error alone (report.md's per-layer table)
    precision_search: bool = False  # keep the fewest layers float that meet the search budget
    search_agreement: float = 0.98  # budget: all-pixel argmax agreement with Keras, at least
    search_miou_points: float = 0.5  # budget: |mIoU delta| in points, at most (when the frames have labels)
    search_max_latency: float | None = None  # budget: x the full int8 TFLite latency, at most (None: no limit)
    targets: Targets = field(default_factory=Targets)

    def __post_init__(self) -> None:
        from segnet_edge.convert.registry import parse_trt_version

        if self.io_dtype not in IO_DTYPES:
            raise UsageError(f"--io must be one of {', '.join(IO_DTYPES)} (got {self.io_dtype!r})")
        if self.output not in OUTPUTS:
            raise UsageError(f"--output must be one of {', '.join(OUTPUTS)} (got {self.output!r})")
        if self.trt_int8 not in TRT_INT8_MODES:
            raise UsageError(f"--trt-int8 must be one of {', '.join(TRT_INT8_MODES)} (got {self.trt_int8!r})")
        for flag, method, percentile in (("--onnx-calib", self.onnx_calib, self.onnx_calib_percentile),
                                         ("--tflite-calib", self.tflite_calib, self.tflite_calib_percentile)):
            if method not in RANGE_METHODS:
                raise UsageError(f"{flag} must be one of {', '.join(RANGE_METHODS)} (got {method!r})")
            if not 90.0 <= percentile < 100.0:
                raise UsageError(f"{flag}-percentile must be in [90, 100), e.g. 99.99 (got {percentile:g})")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1 (got {self.batch})")
        if self.parity_frames < 1:
            raise UsageError(f"--parity-frames must be at least 1 (got {self.parity_frames})")
        if self.workspace_mib < 1:
            raise UsageError(f"--workspace must be at least 1 MiB (got {self.workspace_mib})")
        parse_trt_version(self.trt_version)
        if not 0.0 < self.search_agreement <= 1.0:
            raise UsageError(f"--search-agreement is a fraction in (0, 1], e.g. 0.98 (got {self.search_agreement:g})")
        if self.search_miou_points < 0:
            raise UsageError(f"--search-miou-points must be at least 0 (got {self.search_miou_points:g})")
        if self.search_max_latency is not None and self.search_max_latency < 1.0:
            raise UsageError(f"--search-max-latency is a multiple of the full int8 latency, at least 1, e.g. 1.5 "
                             f"(got {self.search_max_latency:g})")
        if self.io_dtype == "float32" and not (self.keep_float or self.layer_error or self.precision_search):
            raise UsageError("--io float32 (float input and output around int8 layers) needs --keep-float, "
                             "--layer-error or --precision-search; a full-integer model takes --io int8 or uint8")
        if (self.keep_float or self.layer_error or self.precision_search) and self.output != "probabilities":
            raise UsageError("--keep-float, --layer-error and --precision-search measure probabilities; "
                             "convert with --output probabilities")
        if self.opset is not None and not 13 <= self.opset <= 18:
            raise UsageError(f"--opset must be between 13 (per-channel QDQ) and 18 (tf2onnx's limit), got {self.opset}")

    @property
    def onnx_opset(self) -> int:
        """TensorRT 8.2/8.4 parse up to opset 13, 8.5+ up to 17 (onnx-tensorrt docs/operators.md)."""
        from segnet_edge.convert.registry import parse_trt_version

        if self.opset is not None:
            return self.opset
        return DEFAULT_OPSET if parse_trt_version(self.trt_version) >= (8, 5) else LEGACY_TRT_OPSET

    def to_json(self) -> dict:
        data = asdict(self)
        data["formats"] = list(self.formats)
        data["keep_float"] = list(self.keep_float)
        data["input_size"] = None if self.input_size is None else list(self.input_size)
        data["onnx_opset"] = self.onnx_opset
        return data
