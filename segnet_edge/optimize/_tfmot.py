"""tensorflow-model-optimization, imported only after `segnet_edge._tf` has selected Keras 2.

tfmot decides at import which Keras it wraps; imported before TF_USE_LEGACY_KERAS is
set it binds to Keras 3 and every wrapper fails. Importing it from here (and nowhere
else) makes the order impossible to get wrong, whatever an import sorter does.
"""

from __future__ import annotations

import importlib

import segnet_edge._tf  # noqa: F401 - sets TF_USE_LEGACY_KERAS and imports TensorFlow first

tfmot = importlib.import_module("tensorflow_model_optimization")

__all__ = ["tfmot"]
