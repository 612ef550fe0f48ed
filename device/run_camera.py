#!/usr/bin/env python3
"""Stream frames through a converted SegNet on the board: `python device/run_camera.py -m model.tflite --source 0`.

A thin script: the work is in segnet_edge.device.camera_main. It runs from an
installed package or straight from a checkout (no install, no TensorFlow).
"""

from __future__ import annotations

import sys
from pathlib import Path


def _make_importable() -> None:
    """Run as a script, `segnet_edge.device` is this folder: map it when the package is not installed."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]  # device/*.py must not shadow modules
    try:
        import segnet_edge.device  # noqa: F401
        return
    except ImportError:
        pass
    import importlib.util
    import types

    root = types.ModuleType("segnet_edge")
    root.__path__ = []  # a bare parent: the host package (TensorFlow side) is never imported
    sys.modules.setdefault("segnet_edge", root)
    spec = importlib.util.spec_from_file_location("segnet_edge.device", here / "__init__.py",
                                                  submodule_search_locations=[str(here)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["segnet_edge.device"] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    _make_importable()
    from segnet_edge.device.camera_main import main

    sys.exit(main())
