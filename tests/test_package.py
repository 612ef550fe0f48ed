"""The package as users install it: one namespace, light imports, a CLI with --help everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib

from segnet_edge.cli import COMMANDS
from tests.conftest import REPO, run_cli


def _python(code: str, cwd="/") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_one_import_namespace_and_no_generic_top_level_names():
    code = (
        "import importlib.util as u, pathlib\n"
        "import segnet_edge.convert, segnet_edge.calibration, segnet_edge.device, segnet_edge.device.backends\n"
        "print(pathlib.Path(segnet_edge.convert.__file__).parent.name)\n"
        "print(pathlib.Path(segnet_edge.device.__file__).parent.name)\n"
        "print([n for n in ('device', 'convert', 'calibration') if u.find_spec(n)])\n"
    )
    result = _python(code)  # from /, so the checkout itself is not on sys.path
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["convert", "device", "[]"]


def test_importing_the_package_and_the_cli_does_not_import_tensorflow():
    result = _python("import sys, segnet_edge, segnet_edge.cli, segnet_edge.device.preprocess\n"
                     "import segnet_edge.data.layout, segnet_edge.metrics\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_base_install_has_no_tensorflow_and_extras_pin_the_tested_lines():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any("tensorflow" in d or "keras" in d for d in project["dependencies"])
    extras = project["optional-dependencies"]
    train = " ".join(extras["train"])
    assert "tensorflow>=2.21,<2.22" in train and "tf-keras>=2.21,<2.22" in train
    assert "tensorflow-model-optimization>=0.8.1,<0.9" in train
    assert {"tf2onnx", "onnx", "onnxruntime"} <= {d.split(">")[0].split("<")[0].split("=")[0] for d in extras["convert"]}
    assert any(d.startswith("ai-edge-litert") for d in extras["device"])
    assert not any("opencv" in d for d in extras["device"])  # never replaces JetPack's GStreamer cv2
    assert "scripts" in project and project["scripts"]["segnet-edge"] == "segnet_edge.cli:main"


def test_the_wheel_ships_every_package_folder_and_no_development_tool():
    """A subpackage left out of pyproject is missing from the wheel; tools/ (the fault injector) must stay out."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {(REPO / folder).resolve() for folder in setuptools["package-dir"].values()}
    shipped = {init.parent.resolve() for top in folders for init in top.rglob("__init__.py")}
    listed = {(REPO / folder).resolve() for name, folder in setuptools["package-dir"].items()
              if name in setuptools["packages"]}
    assert shipped == listed, sorted(str(p.relative_to(REPO)) for p in shipped ^ listed)
    assert not any(p.is_relative_to(REPO / "tools") for p in listed) and (REPO / "tools" / "reliability").is_dir()


def test_top_level_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: segnet-edge {command}" in result.stdout


def test_unknown_command_and_missing_arguments_exit_2_with_one_line():
    result = run_cli("frobnicate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("train")
    assert result.returncode == 2 and "--data" in result.stderr
