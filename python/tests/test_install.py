"""`cmake --install` puts the package where this interpreter imports it, and the installed
extension finds the installed librld (its RPATH is relative: $ORIGIN/...)."""
import glob
import os
import subprocess
import sys

import pytest

PROBE = r"""
import os, sys, rld
c = rld.Client(sys.argv[1])
r = c.limit("slow").try_acquire()
maps = open("/proc/self/maps").read().split("\n")
lib = sorted({l.split()[-1] for l in maps if "librld.so" in l})
print(rld.__file__)
print(rld._rld.__file__)
print(lib[0] if lib else "")
print(bool(r))
"""


def build_dir():
    b = os.environ.get("RLD_BUILD_DIR")
    if not b or not os.path.exists(os.path.join(b, "cmake_install.cmake")):
        pytest.skip("RLD_BUILD_DIR (a configured build tree) is not set")
    return b


def configured_sitedir(b):
    """RLD_PYTHON_INSTALL_DIR of the build: relative to whatever prefix is installed into."""
    with open(os.path.join(b, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("RLD_PYTHON_INSTALL_DIR:"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("RLD_PYTHON_INSTALL_DIR not in the cache")


def test_install_prefix_and_import(daemon, tmp_path):
    b = build_dir()
    prefix = str(tmp_path / "prefix")
    subprocess.run(["cmake", "--install", b, "--prefix", prefix], check=True,
                   capture_output=True)
    found = glob.glob(f"{prefix}/**/rld/_rld*.so", recursive=True)
    assert len(found) == 1, found
    pkg = os.path.dirname(found[0])
    for f in ("__init__.py", "_core.py", "_helpers.py", "_waits.py", "limits.py", "_rld.pyi",
              "py.typed"):
        assert os.path.exists(os.path.join(pkg, f)), f
    site = os.path.dirname(pkg)
    assert site == os.path.join(prefix, configured_sitedir(b))
    env = dict(os.environ, PYTHONPATH=site)
    out = subprocess.run([sys.executable, "-c", PROBE, daemon.instance], env=env, check=True,
                         capture_output=True, text=True, cwd=str(tmp_path)).stdout.split("\n")
    assert out[0].startswith(pkg) and out[1].startswith(pkg)
    assert os.path.realpath(out[2]).startswith(os.path.realpath(prefix)), \
        f"the installed extension loaded {out[2]}, not the installed librld"
    assert out[3] == "True"


def test_usr_local_install_is_on_the_default_path(tmp_path):
    """Staged with DESTDIR for /usr/local: the package lands in a directory that this
    interpreter has on sys.path without PYTHONPATH (so `import rld` just works once
    installed for real)."""
    b = build_dir()
    stage = str(tmp_path / "stage")
    subprocess.run(["cmake", "--install", b, "--prefix", "/usr/local"], check=True,
                   capture_output=True, env=dict(os.environ, DESTDIR=stage))
    found = glob.glob(f"{stage}/usr/local/**/rld/_rld*.so", recursive=True)
    assert len(found) == 1, found
    site = os.path.dirname(os.path.dirname(found[0]))[len(stage):]
    path = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path))"],
                          check=True, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                          cwd=str(tmp_path)).stdout.split("\n")
    assert site in path, (site, path)
