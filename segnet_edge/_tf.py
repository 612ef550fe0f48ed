"""The one place that imports TensorFlow.

tensorflow-model-optimization needs the Keras 2 API, so TF_USE_LEGACY_KERAS must be
set before TensorFlow is imported anywhere; every host module imports `tf` and
`keras` from here instead of from tensorflow directly.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]
