"""The example scripts run headless and write their figures.

Every ``examples/*.py`` (except the Dask one, which has its own test) runs in a subprocess with
``FASTBP_EXAMPLE_QUICK=1`` (small sizes, few epochs), ``MPLBACKEND=Agg`` and ``--out`` a
temporary folder; it must exit with status 0 and write the PNGs listed below, non-empty.
Scripts that use matplotlib are skipped when it is not installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Tested elsewhere (needs dask and a local cluster).
SEPARATE = {"dask_out_of_core.py"}

# The figures each example must write to --out; an example not listed here must still run.
EXPECTED_PNGS = {
    "quickstart.py": [],
    "digits_learning_curves.py": ["digits_learning_curves.png"],
    "decision_boundaries.py": ["decision_boundaries.png"],
    "regression_lm_vs_adam.py": ["regression_lm_vs_adam.png"],
    "benchmark_chart.py": ["benchmark_chart.png"],
}

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in SEPARATE)

# Generous: the first example run in a fresh Numba cache compiles the kernels it uses.
TIMEOUT_S = 600


def test_every_listed_example_exists():
    assert set(EXPECTED_PNGS) <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path):
    path = EXAMPLES / script
    if "matplotlib" in path.read_text(encoding="utf-8"):
        pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    env = dict(os.environ)
    env["FASTBP_EXAMPLE_QUICK"] = "1"
    env["MPLBACKEND"] = "Agg"
    # fastbp from this checkout, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    result = subprocess.run(
        [sys.executable, str(path), "--out", str(out)],
        cwd=tmp_path,  # nothing may depend on (or be written to) the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    for name in EXPECTED_PNGS.get(script, []):
        png = out / name
        assert png.is_file(), f"{script} did not write {name}; stdout:\n{result.stdout[-2000:]}"
        data = png.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG image"
