#!/usr/bin/env bash
# Prepares a bare, offline GPU machine and runs benchmarks/cuda_check.py there (see the README's "On a GPU").
# That machine's python3 already holds a CUDA build of PyTorch; what the course needs beyond it travels along:
#   .whl/      Python 3.12 wheels of the pinned packages the machine lacks (pip download --no-deps ...)
#   .gpu/bin/  Debian's bwrap, for the grading sandbox
set -uo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check .whl/*.whl \
  || { echo "could not install the carried wheels"; exit 1; }
export PATH="$PWD/.gpu/bin:$PATH" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
python3 benchmarks/cuda_check.py
