"""The import layers (pyproject.toml `[tool.importlinter]`, checked by `make lint`): the tree keeps them, and the
contracts catch an upward import and a cycle when one is introduced (in a copy of the tree)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("cli", "serving", "reports", "jobs", "loop", "training", "models", "features", "delivery", "stores",
            "policy", "synthetic", "triage")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def inject(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_the_layer_and_cycle_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_an_upward_import_breaks_the_layers(tree_copy: Path) -> None:
    # features must never reach up into the service
    inject(tree_copy, "features.schema", "import serving.schemas  # an upward import")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "features.schema -> serving.schemas" in result.stdout


def test_a_store_importing_the_training_layer_breaks_the_layers(tree_copy: Path) -> None:
    inject(tree_copy, "stores.records", "from training import config  # an upward import")
    result = lint_imports(tree_copy)
    assert result.returncode != 0 and "stores.records -> training.config" in result.stdout


def test_a_cycle_between_modules_of_a_package_is_caught(tree_copy: Path) -> None:
    # stores.scoring_log imports stores.records; the reverse closes a cycle
    inject(tree_copy, "stores.records", "import stores.scoring_log  # closes a cycle")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "No cycles are allowed in stores" in result.stdout
