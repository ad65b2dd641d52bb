"""fastbp's exit hook (fastbp/_shutdown.py) must not cost a process its finalizers."""

import subprocess
import sys
import textwrap


def _run(code, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)


def test_garbage_cycles_are_finalized_at_exit(tmp_path):
    # an unreachable reference cycle whose finalizer writes a file: the hook
    # collects it before freezing the heap, as the interpreter would
    marker = tmp_path / "finalized.txt"
    proc = _run(
        f"""
        import fastbp

        class Node:
            def __del__(self):
                open({str(marker)!r}, "w").write("done")

        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "done"


def test_exit_hook_respects_a_disabled_collector(tmp_path):
    proc = _run(
        """
        import gc
        import fastbp
        from fastbp import _shutdown

        _shutdown.install()  # installing again replaces the hook
        assert gc.get_freeze_count() == 0
        gc.disable()
        _shutdown._collect_then_freeze()
        assert gc.get_freeze_count() == 0, "a disabled collector is left alone"
        gc.enable()
        _shutdown._collect_then_freeze()
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        print("ok")
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
