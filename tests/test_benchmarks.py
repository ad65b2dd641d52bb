"""The asv suite in ``benchmarks/`` imports and validates (``asv check``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_asv_check_passes():
    pytest.importorskip("asv")
    root = Path(__file__).resolve().parent.parent
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [asv, "check", "--python=same"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "No problems found" in out, out[-4000:]
