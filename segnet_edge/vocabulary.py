"""The names a user can give on the command line and in configs, defined once and TensorFlow-free.

The modules that act on them (models.py, layers.py, train.py, model_io.py, convert) import
them from here, and so do the argument parsers and config checks that must stay light.
"""

from __future__ import annotations

#: Networks `train` can build (segnet_edge.models).
ARCHITECTURES = ("segnet", "segnet-basic")
#: Optimizers for training and fine-tuning.
OPTIMIZERS = ("sgd", "adam")
#: Learning-rate schedules for training and fine-tuning.
LR_SCHEDULES = ("constant", "cosine", "poly")
#: How the unpooling layer expands indices to a 2x2 mask; an exporter may pick per runtime.
UNPOOL_MODES = ("onehot", "select", "gather")
#: Keras model files segnet-edge reads and writes.
MODEL_SUFFIXES = (".h5", ".keras")
#: What a model (and its artifacts) output: class probabilities, or a uint8 label map.
OUTPUTS = ("probabilities", "labels")
#: How `prune --channels` ranks filters, and the default.
CHANNEL_CRITERIA = ("l1", "bn")
DEFAULT_CHANNEL_CRITERION = "l1"
