"""SegNet's index-recording max pooling and index-driven unpooling, in builtin ops only.

`tf.nn.max_pool_with_argmax` needs TFLite Flex ops and scatter-based unpooling is
hostile to int8 and TensorRT, so both layers are written with ops that TFLite has
as builtins and that TensorRT's ONNX parser takes: space_to_depth, reduce_max,
arg_max, one_hot/equal+select, mul and depth_to_space.

The recorded index is the position inside each 2x2 window (0..3 in row-major
order: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), kept at pooled
resolution, which is exactly what SegNet stores and needs 2 bits per value. The
pooling layer can store it as uint8 (`index_dtype`, a CAST right after the ARG_MAX,
bit-identical results), but int32 stays the default: measured on the full-size
int8 SegNet, neither LiteRT's arena nor ONNX Runtime's holds less with it, because
their peak is at the first full-resolution stage, where no index is alive yet, and
the unpooling's GATHER / ONE_HOT widen the indices back to int32 anyway
(docs/memory.md).
"""

from __future__ import annotations

from segnet_edge._tf import keras, tf
from segnet_edge.vocabulary import UNPOOL_MODES

#: The dtype the pooling layer stores its window indices in: "int32" (ARG_MAX's own output, the default)
#: or "uint8" (1 byte per index, 4x fewer bytes alive between pool and unpool). Same values either way.
INDEX_DTYPES = ("int32", "uint8")


def _pad_to_even(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Ceil mode: repeat the last row/column so odd sizes pool like Caffe's SegNet.

    The copy sits after its original in row-major window order, so with
    first-maximum-wins ties the argmax never points at padding, and no sentinel
    value widens the int8 range the way a -inf constant pad would.
    """
    if height % 2:
        x = tf.concat([x, x[:, height - 1 :, :, :]], axis=1)
    if width % 2:
        x = tf.concat([x, x[:, :, width - 1 :, :]], axis=2)
    return x


@keras.utils.register_keras_serializable(package="segnet_edge")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2/stride-2 max pooling that also returns the argmax position in each window.

    Returns `[pooled, indices]`; indices are `index_dtype` (int32 unless asked) in 0..3. Odd sizes pool
    in ceil mode.
    """

    def __init__(self, index_dtype: str = "int32", **kwargs):
        super().__init__(**kwargs)
        if index_dtype not in INDEX_DTYPES:
            raise ValueError(f"unknown index dtype {index_dtype!r}; use one of {INDEX_DTYPES}")
        self.index_dtype = index_dtype

    def call(self, inputs, training=None):
        _, height, width, channels = inputs.shape
        if height is None or width is None or channels is None:
            raise ValueError(
                f"{self.name}: needs a static input size (got {inputs.shape}); build the model "
                "with a fixed --input-size"
            )
        x = _pad_to_even(inputs, height, width)
        out_h, out_w = (height + 1) // 2, (width + 1) // 2
        # (N, h, w, 4*C): channel block k holds window position k (row-major).
        blocks = tf.nn.space_to_depth(x, 2)
        blocks = tf.reshape(blocks, [-1, 4, channels])
        # Arg-max over the LAST axis of the (N, C, 4) transpose: TFLite's ARG_MAX has a tight loop for
        # the innermost axis but a generic, ~5x slower one for a middle axis, and the transpose itself
        # runs in XNNPACK (bench/run.py's op profile). Same first-maximum-wins result.
        indices = tf.argmax(tf.transpose(blocks, [0, 2, 1]), axis=-1, output_type=tf.int32)
        if training:
            # reduce_max splits its gradient between tied maxima; select by the
            # argmax instead so only the first maximum receives gradient.
            mask = tf.one_hot(indices, 4, axis=1, dtype=blocks.dtype)
            pooled = tf.reduce_sum(blocks * mask, axis=1)
        else:
            # The same maxima from the runtimes' own pooling kernel: XNNPACK's MAX_POOL_2D, ONNX
            # MaxPool (native NCHW and int8 in ONNX Runtime, where REDUCE_MAX runs in float between
            # a dequantize and a quantize), oneDNN's pooling in TensorFlow.
            pooled = tf.nn.max_pool2d(x, 2, 2, "VALID")
        pooled = tf.reshape(pooled, [-1, out_h, out_w, channels])
        if self.index_dtype != "int32":
            # Right after the ARG_MAX, so its int32 output lives for one op and only the 1-byte copy is kept
            # until the unpool (TFLite CAST, ONNX Cast: builtin everywhere).
            indices = tf.cast(indices, self.index_dtype)
        indices = tf.reshape(indices, [-1, out_h, out_w, channels])
        return [pooled, indices]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        shape = (n, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)
        return [tf.TensorShape(shape), tf.TensorShape(shape)]

    def compute_mask(self, inputs, mask=None):
        return [None, None]

    def get_config(self):
        config = super().get_config()
        config.update({"index_dtype": self.index_dtype})
        return config


@keras.utils.register_keras_serializable(package="segnet_edge")
class MaxUnpooling2D(keras.layers.Layer):
    """Place each pooled value at its recorded 2x2 position, zeros elsewhere.

    `output_size` is the (height, width) recorded before pooling; a ceil-mode pool
    of an odd size is cropped back to it. `mode` picks the index expansion:
    "onehot" (one_hot x mul: cheapest in float TFLite, TensorRT >= 8.5), "select"
    (equal + where: cheaper in ONNX Runtime int8, the only form TensorRT 8.2 parses) or "gather"
    (the mask is a row of a constant 4x4 identity picked by the index, times the values: a table
    lookup keeps its table's quantization, so unlike ONE_HOT it is exact in int8 TFLite, and the
    multiply runs in XNNPACK where SELECT_V2's broadcast form is a slow reference kernel).
    TFLite's int8 quantizer gives ONE_HOT's int8 output the scale of the mul's other input while
    on/off keep their own, so "onehot" int8 TFLite is garbage.
    """

    def __init__(self, output_size: tuple[int, int] | None = None, mode: str = "onehot", **kwargs):
        super().__init__(**kwargs)
        if mode not in UNPOOL_MODES:
            raise ValueError(f"unknown unpool mode {mode!r}; use one of {UNPOOL_MODES}")
        self.output_size = None if output_size is None else (int(output_size[0]), int(output_size[1]))
        self.mode = mode

    def call(self, inputs):
        values, indices = inputs
        _, height, width, channels = values.shape
        if height is None or width is None or channels is None:
            raise ValueError(f"{self.name}: needs a static input size (got {values.shape})")
        flat_values = tf.reshape(values, [-1, 1, channels])
        indices = tf.cast(indices, tf.int32)
        flat_indices = tf.reshape(indices, [-1, 1, channels])
        # (N, C) by reshape, not flat_indices[:, 0, :]: TFLite runs an int32 STRIDED_SLICE as a slow
        # reference kernel (XNNPACK takes float and int8 only), a reshape costs nothing.
        pairs = tf.reshape(indices, [-1, channels])
        if self.mode == "onehot":
            mask = tf.one_hot(pairs, 4, axis=1, dtype=values.dtype)
            blocks = flat_values * mask
        elif self.mode == "gather":
            # (N, C) indices pick rows of eye(4): (N, C, 4) -> (N, 4, C), window position major.
            mask = tf.transpose(tf.gather(tf.eye(4, dtype=values.dtype), pairs), [0, 2, 1])
            blocks = flat_values * mask
        else:
            positions = tf.constant([0, 1, 2, 3], dtype=tf.int32, shape=[1, 4, 1])
            hit = tf.equal(flat_indices, positions)
            # A broadcast constant, not zeros_like: TFLite's int8 quantizer cannot quantize
            # ZEROS_LIKE and would leave SELECT_V2 in float between QUANTIZE/DEQUANTIZE ops.
            blocks = tf.where(hit, flat_values, tf.zeros([1, 1, 1], values.dtype))
        blocks = tf.reshape(blocks, [-1, height, width, 4 * channels])
        out = tf.nn.depth_to_space(blocks, 2)
        target_h, target_w = self.output_size or (2 * height, 2 * width)
        if (target_h, target_w) != (2 * height, 2 * width):
            if not (2 * height - 1 <= target_h <= 2 * height and 2 * width - 1 <= target_w <= 2 * width):
                raise ValueError(
                    f"{self.name}: output_size {target_h}x{target_w} does not match pooled size "
                    f"{height}x{width}"
                )
            out = out[:, :target_h, :target_w, :]
        return out

    def compute_output_shape(self, input_shape):
        values_shape = input_shape[0]
        n, h, w, c = values_shape
        if self.output_size is not None:
            return tf.TensorShape((n, *self.output_size, c))
        return tf.TensorShape((n, None if h is None else 2 * h, None if w is None else 2 * w, c))

    def get_config(self):
        config = super().get_config()
        config.update({"output_size": self.output_size, "mode": self.mode})
        return config


@keras.utils.register_keras_serializable(package="segnet_edge")
class LocalResponseNormalization(keras.layers.Layer):
    """Caffe's across-channel LRN as SegNet-Basic applies it to the input image.

    Caffe divides alpha by the window size; TensorFlow does not, hence alpha / size.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def call(self, inputs):
        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.size // 2, bias=self.k, alpha=self.alpha / self.size, beta=self.beta
        )

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k})
        return config


@keras.utils.register_keras_serializable(package="segnet_edge")
class ClassLabels(keras.layers.Layer):
    """Class scores (N, H, W, C) -> uint8 label map (N, H, W): the argmax moved into the model.

    The board then copies H x W bytes instead of H x W x C scores and skips its own argmax; an
    exporter puts it on the logits (softmax cannot change the winner) so the softmax goes too.
    """

    def call(self, inputs):
        return tf.cast(tf.argmax(inputs, axis=-1, output_type=tf.int32), tf.uint8)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[:-1])


#: Every custom class a segnet-edge model file may contain.
CUSTOM_OBJECTS = {
    "MaxPoolingWithArgmax2D": MaxPoolingWithArgmax2D,
    "MaxUnpooling2D": MaxUnpooling2D,
    "LocalResponseNormalization": LocalResponseNormalization,
    "ClassLabels": ClassLabels,
    "segnet_edge>MaxPoolingWithArgmax2D": MaxPoolingWithArgmax2D,
    "segnet_edge>MaxUnpooling2D": MaxUnpooling2D,
    "segnet_edge>LocalResponseNormalization": LocalResponseNormalization,
    "segnet_edge>ClassLabels": ClassLabels,
}
