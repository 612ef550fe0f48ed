"""segnet-edge: SegNet from training to a camera on an embedded GPU.

Importing the package is light (no TensorFlow) so that the device side and
`segnet-edge --help` start fast; `load_model` imports TensorFlow when called.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_model(path, unsafe: bool = False, verify: bool = True):
    """Load a segnet-edge `.h5` or `.keras` file with its custom layers registered (and, unless `verify`
    is off, its bytes checked against the digest recorded when it was saved)."""
    from segnet_edge.model_io import load_model as _load

    return _load(path, unsafe=unsafe, verify=verify)


__all__ = ["load_model", "__version__"]
