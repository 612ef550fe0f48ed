"""`make test`'s two workers: tests that share an expensive fixture must land on one worker."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import REPO, SHARED_FIXTURE_SCOPES, fixture_scope_of


@pytest.mark.parametrize(("nodeid", "scope"), [
    ("tests/convert/test_convert_cli.py::test_convert_writes_every_artifact_and_passes", "convert"),
    ("tests/device/test_device_backends.py::test_infer_checks_input_and_state", "artifacts"),
    ("tests/reliability/test_fuzz.py::test_x[a/b::c]", "artifacts"),
    ("tests/test_bench_autoselect.py::test_folders_expand_to_their_artifacts", "artifacts"),
    ("tests/optimize/test_prune.py::test_structured_2_4_through_the_cli", "optimize"),
    ("tests/test_train.py::test_resume_continues_from_the_last_complete_epoch", "tests/test_train.py"),
    ("tests/test_models.py::test_alpha_any_size_and_any_class_count[segnet]", "tests/test_models.py"),
])
def test_scope_of_a_test(nodeid, scope):
    assert fixture_scope_of(nodeid) == scope


def _session_fixtures(path) -> list[str]:
    """Names of the session-scoped fixtures a conftest defines."""
    tree = ast.parse(path.read_text())
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            and any("session" in ast.unparse(d) for d in node.decorator_list)]


def test_every_folder_with_session_fixtures_is_one_scope():
    """A new test folder whose conftest builds session fixtures would otherwise build them on both workers."""
    unmapped = [conftest.parent.name for conftest in (REPO / "tests").glob("*/conftest.py")
                if _session_fixtures(conftest) and conftest.parent.name not in SHARED_FIXTURE_SCOPES]
    assert unmapped == []
    # the root conftest's `artifacts` is used outside device/ and reliability/ only by the auto-select tests
    takes_artifacts = re.compile(r"^def test_\w+\([^)]*\bartifacts\b", re.MULTILINE)
    users = sorted(p.relative_to(REPO / "tests").as_posix() for p in (REPO / "tests").rglob("test_*.py")
                   if takes_artifacts.search(p.read_text()))
    assert {fixture_scope_of(f"tests/{user}::t") for user in users} == {"artifacts"}, users
