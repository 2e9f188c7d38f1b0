"""Builds the course environment every hub account runs (layout.env()): students' JupyterLab servers and kernels, the
instructor's Formgrader and grading runs, and the hub itself.

It needs an interpreter every account can run. The interpreter that builds the course's .venv may live where other
accounts cannot enter (pyenv under /root, mode 0700); then its installation (without site-packages) is copied to
layout.shared_python() and its library path pointed at the copy with patchelf. The environment gets exactly the
pinned requirements.txt, not the course package: rnncourse holds the grading code, which only the instructor's
course directory carries (see accounts.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from . import envconfig, layout
from ..course import repo_root

NOBODY = 65534


def runnable_by_everyone(python: str) -> bool:
    """Does `python` start, as this very interpreter, for an account with no special access (nobody)? The version is
    compared because a binary whose own library directory is unreachable may load the system's libpython instead."""
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/bin/sh", "-c",
                            'exec "$0" -c "import sys; print(sys.version)"', python], capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == sys.version.strip()


def copy_interpreter(dest: Path) -> Path:
    """This interpreter's installation (bin/, its libpython, the standard library) copied to dest, readable by all."""
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "bin").mkdir(parents=True)
    (dest / "lib").mkdir()
    shutil.copy2(base / "bin" / version, dest / "bin" / version)
    for lib in Path(sysconfig.get_config_var("LIBDIR")).glob(f"lib{version}*.so*"):
        shutil.copy2(lib, dest / "lib" / lib.name)
    shutil.copytree(base / "lib" / version, dest / "lib" / version, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__", "idlelib", "tkinter"))
    (dest / "lib" / version / "site-packages").mkdir()
    if any((dest / "lib").glob(f"lib{version}*.so*")):  # a shared-library build: find libpython in the copy
        subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(dest / "bin" / version)], check=True)
    os.symlink(version, dest / "bin" / "python3")
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest / "bin" / version


def interpreter() -> str:
    """An interpreter every account can run: this one if it can, else a copy of it."""
    if runnable_by_everyone(sys.executable) and runnable_by_everyone(os.path.realpath(sys.executable)):
        return sys.executable
    python = copy_interpreter(layout.shared_python())
    if not runnable_by_everyone(str(python)):
        raise SystemExit(f"{python} does not start for other accounts; see README, 'Teaching on JupyterHub'")
    return str(python)


def build() -> Path:
    """Create (or update) the shared environment from requirements.txt; write its Jupyter configuration."""
    env = layout.env()
    requirements = repo_root() / "requirements.txt"
    stamp = env / ".installed"
    if not (stamp.exists() and stamp.read_bytes() == requirements.read_bytes()):
        if not (env / "bin" / "python").exists():
            subprocess.run([interpreter(), "-m", "venv", str(env)], check=True)
        subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(requirements)], check=True)
        stamp.write_bytes(requirements.read_bytes())
    envconfig.write(env)
    subprocess.run(["chmod", "-R", "a+rX", str(env)], check=True)
    return env
