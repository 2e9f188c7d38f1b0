#!/usr/bin/env bash
# Packs what benchmarks/cuda_run.sh needs on an offline GPU machine whose python3 (3.12) already holds a CUDA build
# of PyTorch: wheels of requirements.txt's pins that such a machine lacks (into .whl/) and Debian's bwrap (into
# .gpu/bin/). Both folders are git-ignored; carry them along with the working tree. Run here, with the network.
set -euo pipefail
cd "$(dirname "$0")/.."
# On the GPU image already, or not needed to grade (the browser, Dask, PostgreSQL, JupyterLab's front end).
SKIP="torch setuptools attrs certifi charset-normalizer click cloudpickle contourpy cycler filelock fonttools fsspec
h11 httpcore httpx idna iniconfig jinja2 kiwisolver markupsafe matplotlib mpmath msgpack networkx numpy packaging
pillow pluggy prometheus-client psutil pygments pyparsing pytest python-dateutil pyyaml requests six sortedcontainers
sympy toolz tqdm typing-extensions urllib3 zipp anyio jupyterlab notebook jupyterlab-server jupyter-lsp
jupyter-builder ipywidgets widgetsnbextension jupyterlab-widgets dask distributed partd locket zict tblib
psycopg2-binary async-lru babel json5 notebook-shim playwright greenlet"
pins=$(python3 - "$SKIP" <<'PY'
import re, sys
skip = set(sys.argv[1].split())
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if "==" in line and re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() not in skip:
        print(line)
PY
)
rm -rf .whl && mkdir -p .whl .gpu/bin
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
  --platform manylinux1_x86_64 -d .whl $pins
tmp=$(mktemp -d) && (cd "$tmp" && apt-get download bubblewrap >/dev/null 2>&1 && dpkg -x bubblewrap_*.deb x)
cp "$tmp/x/usr/bin/bwrap" .gpu/bin/ && rm -rf "$tmp"
echo "$(ls .whl | wc -l) wheels ($(du -sh .whl | cut -f1)) in .whl/, bwrap in .gpu/bin/"
