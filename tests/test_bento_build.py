"""`bentoml build` from bentofile.yaml packs the service's code, the reviewer page and pinned requirements,
and nothing from the virtualenv, data or tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_bentoml_build_packs_the_service(tmp_path: Path) -> None:
    bentoml = Path(sys.executable).parent / "bentoml"
    env = os.environ | {"BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run([str(bentoml), "build", "."], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    builds = [p for p in (tmp_path / "bentos" / "triage").iterdir() if p.name != "latest"]
    assert len(builds) == 1
    src = builds[0] / "src"
    files = {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()}
    assert {"serving/service.py", "features/listing.py", "models/artifact.py", "serving/ui/index.html"} <= files
    assert not any(f.startswith((".venv", "var/", "tests/")) for f in files)
    requirements = (builds[0] / "env" / "python" / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "bentoml==" in requirements
