"""Fits in worker processes: fork, spawn and forkserver children, after the
parent fitted or not, with one or two threads, never hang and give the fits the
same process gives (issue 20). A child forked after Numba's GNU OpenMP threads
started runs its parallel kernels' work on one thread (fastbp/engine/cpu.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing as mp, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import fastbp
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]

    def fit(n_jobs):
        # 130 hidden units: 9,760 parameters, a step in two slices (a parallel
        # kernel of its own besides the data-parallel epoch's)
        model = fastbp.MLPClassifier(hidden_layer_sizes=(130,), max_iter=3, random_state=0, n_jobs=n_jobs)
        model.fit(X, y)
        return [float(np.sum(c)) for c in model.coefs_] + model.predict_proba(X[:5]).ravel().tolist()

    def in_children(method):
        with mp.get_context(method).Pool(2) as pool:
            return pool.map_async(fit, [1, 2]).get(timeout=300)

    if __name__ == "__main__":
        methods = ("fork", "spawn", "forkserver")
        results = {}
        for method in methods:  # the parent has not fitted (no thread started)
            results[f"{method}-before"] = in_children(method)
        results["serial"] = [fit(1), fit(2)]  # the same fits in this process
        for method in methods:
            results[f"{method}-after"] = in_children(method)
        print(json.dumps(results))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="fork and forkserver: POSIX start methods")
def test_fits_in_forked_spawned_and_forkserver_children(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    serial = results.pop("serial")
    assert len(results) == 6
    for name, (one_thread, two_threads) in results.items():
        # one thread: the same bits; two: the same fit up to the order the
        # threads' gradients are summed in (a child forked after the parent's
        # threads started sums them in one thread's order)
        np.testing.assert_array_equal(one_thread, serial[0], err_msg=name)
        np.testing.assert_allclose(two_threads, serial[1], rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_child_forked_after_threads_started_runs_on_one_thread(tmp_path):
    # the fallback itself: parallel kernels are not launched (they would end the
    # process under GNU OpenMP), results equal a one-thread fit's bits
    code = textwrap.dedent(
        """
        import os, sys, json, warnings
        import numpy as np
        warnings.simplefilter("ignore")
        import fastbp, numba
        from fastbp.engine import cpu as _engine
        X = np.random.default_rng(0).standard_normal((300, 64)); y = (X[:, 0] > 0).astype(int)
        def fit(n_jobs):
            m = fastbp.MLPClassifier(hidden_layer_sizes=(130,), max_iter=2, random_state=0, n_jobs=n_jobs)
            return m.fit(X, y).coefs_[0].ravel().tolist()
        fit(2)
        omp = numba.threading_layer() == "omp"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            out = {"available": _engine.numba_threads_available(), "two": fit(2)}
            os.write(w, json.dumps(out).encode()); os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 1 << 20):
            data += chunk
        os.waitpid(pid, 0)
        child = json.loads(data)
        print(json.dumps({"omp": omp, "child": child, "one": fit(1)}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["omp"]:
        assert result["child"]["available"] is False
        assert result["child"]["two"] == result["one"]
    else:
        assert result["child"]["available"] is True
