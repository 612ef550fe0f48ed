"""The one place that imports TensorFlow.

tensorflow-model-optimization needs the Keras 2 API, so TF_USE_LEGACY_KERAS must be
set before TensorFlow is imported anywhere; every host module imports `tf` and
`keras` from here instead of from tensorflow directly.

TensorFlow 2.21 writes INFO lines from C++ during import whatever
TF_CPP_MIN_LOG_LEVEL says; they are held back here and shown only if the import fails.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not glob.glob("/dev/nvidia[0-9]*") and not glob.glob("/dev/dxg"):
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # no GPU: skip CUDA probing and its error lines


def _import_quietly():
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to keep quiet
        import tensorflow
        import tf_keras

        return tensorflow, tf_keras
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
            import tf_keras

            tensorflow.config.list_physical_devices()  # device probing logs its own lines once
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow, tf_keras


tf, keras = _import_quietly()
tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]
