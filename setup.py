"""The wheel carries prebuilt kernels: after the sources are copied into the build folder,
``python -m fastbp warmup --prebuild`` compiles the default fits' and predictions' kernels
for the x86-64-v3 and x86-64-v4 baselines, float64 and float32, into
``fastbp/_prebuilt/<baseline>/`` there (see fastbp/_warmup.py and fastbp/kernels/cache.py).

``FASTBP_PREBUILD=0`` builds a wheel without them (kernels then compile on first use, as from a
source tree). Off x86-64, or if the build fails, the wheel is built without them and says so.
Nothing prebuilt is ever committed: ``fastbp/_prebuilt/`` is made here (in the build folder, and
a copy in the source tree for ``python -m fastbp`` run from a clone).
"""

import os
import platform
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_kernels(build_py):
    """``build_py``, then the prebuilt kernels into the build folder's package."""

    def run(self):
        super().run()
        if os.environ.get("FASTBP_PREBUILD", "1") == "0":
            print("fastbp: FASTBP_PREBUILD=0, the wheel carries no prebuilt kernels")
            return
        if platform.machine().lower() not in ("x86_64", "amd64"):
            print(f"fastbp: no prebuilt kernels for {platform.machine()} (x86-64 only)")
            return
        into = os.path.abspath(os.path.join(self.build_lib, "fastbp", "_prebuilt"))
        build_lib = os.path.abspath(self.build_lib)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [build_lib, os.environ.get("PYTHONPATH")]))}
        # an earlier build of the same sources and versions in this tree is reused (build/ is not in git)
        reuse = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build", "fastbp-prebuilt")
        command = [sys.executable, "-m", "fastbp", "warmup", "--prebuild", into, "--reuse", reuse]
        print("fastbp: prebuilding kernels:", " ".join(command))
        result = subprocess.run(command, env=env, cwd=build_lib)
        if result.returncode != 0:
            print("fastbp: building the prebuilt kernels failed; the wheel carries none (kernels compile on first use)")
            return
        # The source tree gets them too (fastbp/_prebuilt/ is not in git): `python -m fastbp` run
        # from a clone imports the package from the tree, whose sources are the wheel's. They are
        # loaded only while the digest of the sources still matches (an edit makes them unused).
        tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastbp")
        if os.path.isfile(os.path.join(tree, "kernels", "cache.py")) and os.access(tree, os.W_OK):
            shutil.rmtree(os.path.join(tree, "_prebuilt"), ignore_errors=True)
            shutil.copytree(into, os.path.join(tree, "_prebuilt"))


setup(cmdclass={"build_py": build_py_with_kernels})
