"""``python -m fastbp warmup`` and the wheel's prebuilt kernels (fastbp/_warmup.py,
fastbp/kernels/cache.py): built ahead of time, loaded only when they match the host
CPU, the sources and the versions, with one line saying why otherwise."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import _warmup
from fastbp.kernels import cache as _cache_loading

PACKAGE = Path(fastbp.__file__).parent

# A fresh process: a default fit's kernels (the threaded epoch) and a forward pass
# (predict), with every kernel's cache hits and misses and what it printed.
_CHILD = """
import json
import numpy as np
import fastbp
from fastbp import _warmup
rng = np.random.default_rng(0)
X = rng.standard_normal((40, 5)).astype({dtype})
y = np.arange(40) % 3
model = fastbp.MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X, y)
proba = model.predict_proba(X)
compiled, loaded = _warmup._compiled_and_loaded()
print(json.dumps({{
    "compiled": compiled, "loaded": loaded,
    "coefs": [c.tolist() for c in model.coefs_], "proba": proba.tolist(),
}}))
"""


def _child(dtype, env, cwd):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD.format(dtype=dtype))], capture_output=True, text=True,
        timeout=600, env=env, cwd=str(cwd),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_warmup_builds_what_a_default_fit_loads(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "FASTBP_PREBUILT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "fastbp", "warmup", "--dtypes", "float32", "--jobs", "1"],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4/4" in proc.stderr and "kernel signatures compiled" in proc.stdout  # the progress bar, the summary
    fitted, stderr = _child("np.float32", env, tmp_path)
    assert fitted["compiled"] == 0 and fitted["loaded"] >= 2  # the epoch and predict, nothing compiled
    assert "compiling" not in stderr
    again = subprocess.run(
        [sys.executable, "-m", "fastbp", "warmup", "--dtypes", "float32", "--jobs", "1", "--quiet"],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path),
    )
    assert again.returncode == 0 and " 0 kernel signatures compiled" in again.stdout


@pytest.mark.parametrize("argv", [["--dtypes", "float16"], ["--jobs", "0"], ["--paths", "some"], ["--targets", "x86-64-v3"]])
def test_warmup_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _warmup.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_default_cases_are_in_all():
    default = _warmup.cases_for("default")
    every = _warmup.cases_for("all")
    assert default and all(case in every for case in default) and len(every) > len(default)
    with pytest.raises(ValueError, match="paths must be one of"):
        _warmup.cases_for("most")


def _package_copy(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "fastbp", ignore=shutil.ignore_patterns("__pycache__", "_prebuilt"))
    return root


def test_prebuilt_kernels_load_only_when_they_match(tmp_path):
    if "x86-64-v3" not in _cache_loading.host_baselines():
        pytest.skip("the host runs no x86-64-v3 code")
    root = _package_copy(tmp_path)
    prebuilt = root / "fastbp" / "_prebuilt"
    env = {**os.environ, "PYTHONPATH": str(root), "FASTBP_PREBUILT": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "fastbp", "warmup", "--prebuild", str(prebuilt), "--targets", "x86-64-v3",
         "--dtypes", "float64"],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(root),
    )
    assert build.returncode == 0, build.stderr[-3000:]
    manifest = json.loads((prebuilt / "x86-64-v3" / "manifest.json").read_text())
    assert manifest["target"] == "x86-64-v3" and len(manifest["digest"]) == 64

    # an empty user cache: the shipped kernels load, nothing compiles, the same bits as compiling here
    loaded, stderr = _child("np.float64", {**env, "NUMBA_CACHE_DIR": str(tmp_path / "empty")}, root)
    assert loaded["compiled"] == 0 and loaded["loaded"] >= 2 and "compiling" not in stderr
    compiled, stderr = _child("np.float64", {**env, "NUMBA_CACHE_DIR": str(tmp_path / "c1"), "FASTBP_PREBUILT": "0"},
                              root)
    assert compiled["compiled"] > 0
    assert stderr.count("fastbp: compiling kernels") == 1 and "FASTBP_PREBUILT=0" in stderr  # said once, and why
    assert loaded["coefs"] == compiled["coefs"] and loaded["proba"] == compiled["proba"]

    # a prebuild from other sources or versions is never loaded
    manifest["digest"] = "0" * 64
    (prebuilt / "x86-64-v3" / "manifest.json").write_text(json.dumps(manifest))
    probe = subprocess.run(
        [sys.executable, "-c", "from fastbp.kernels import cache as c; print(c.prebuilt_targets()); "
         "print(c._why_compiling())"],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(root),
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.splitlines()[0] == "()" and "other versions or sources" in probe.stdout


def test_a_baseline_the_host_lacks_is_never_chosen(monkeypatch):
    class Features(dict):
        pass

    import llvmlite.binding as llvm

    avx2_only = Features({name: True for name in _cache_loading.BASELINES["x86-64-v3"]})
    monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: avx2_only)
    _cache_loading.host_baselines.cache_clear()
    try:
        if _cache_loading.platform.machine().lower() in ("x86_64", "amd64"):
            assert _cache_loading.host_baselines() == ("x86-64-v3",)
        monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: Features(avx=True, sse3=True))
        _cache_loading.host_baselines.cache_clear()
        assert _cache_loading.host_baselines() == ()
    finally:
        _cache_loading.host_baselines.cache_clear()


def test_the_switch_turns_the_prebuilt_kernels_off(monkeypatch):
    monkeypatch.setenv("FASTBP_PREBUILT", "0")
    _cache_loading.prebuilt_targets.cache_clear()
    try:
        assert _cache_loading.prebuilt_targets() == ()
        assert "FASTBP_PREBUILT=0" in _cache_loading._why_compiling()
    finally:
        _cache_loading.prebuilt_targets.cache_clear()


def test_every_baseline_includes_the_one_below():
    assert set(_cache_loading.BASELINES["x86-64-v3"]) < set(_cache_loading.BASELINES["x86-64-v4"])
    assert np.all([name.islower() for name in _cache_loading.BASELINES["x86-64-v4"]])
