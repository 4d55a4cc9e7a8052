#!/usr/bin/env bash
# Executes the example notebooks IN PLACE (outputs saved into examples/*.ipynb), on a machine with
# no Jupyter and no package index: the GPU host, so the notebooks can be committed with H200 outputs.
#
#   bash .gpu/boot.sh bash tools/execute_notebooks.sh [examples/NAME.ipynb ...]   # all by default
#
# - The Jupyter stack (nbclient, nbformat, jupyter_client/_core, ipykernel, ipython and their
#   dependencies: tools/notebook-wheels.txt) comes as cp312 wheels in .whl/ (not committed:
#   `bash tools/download_notebook_wheels.sh` fetches them on a machine with an index) and is
#   installed with --no-index into $NOTEBOOK_SITE (/tmp/site). Without .whl/ the packages already
#   installed are used.
# - The kernel is an IPython kernel on this very interpreter (`$PYTHON -m ipykernel_launcher`),
#   whatever kernelspecs exist on the machine, started in the repository root, with PYTHONPATH
#   passed down (the CuTe DSL from .gpu/boot.sh, the wheels, the repository).
# - Each notebook is executed top to bottom with a per-cell timeout ($NOTEBOOK_CELL_TIMEOUT s,
#   default 300) and written back in place even when a cell fails; a failed notebook makes the
#   exit status 1, the others still run. Copies go to $OUT when it is set (the device tool's
#   output folder; at most 8 files come back, here one per notebook plus nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PYTHON=${PYTHON:-python3}
site=${NOTEBOOK_SITE:-/tmp/site}

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [[ $# -eq 0 ]]; then
  set -- examples/*.ipynb
fi

"$PYTHON" - "$@" <<'EOF'
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path.cwd()
TIMEOUT = int(os.environ.get("NOTEBOOK_CELL_TIMEOUT", "300"))


class ThisInterpreter(KernelSpecManager):
    """Every kernel name (the notebooks say "python3") resolves to IPython on this interpreter."""

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python", resource_dir=str(ROOT))


failed = []
for name in sys.argv[1:]:
    path = Path(name)
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=ThisInterpreter())
    client = NotebookClient(nb, km=km, timeout=TIMEOUT, record_timing=False,
                            resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellExecutionError as error:
        failed.append(name)
        status = "FAILED: " + str(error).strip().splitlines()[-1][:300]
    except Exception as error:  # a timeout or a dead kernel: keep the outputs so far
        failed.append(name)
        status = f"FAILED: {type(error).__name__}: {str(error)[:300]}"
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - start:.1f} s, "
          f"{path.stat().st_size // 1024} KB, {status}", flush=True)
    if os.environ.get("OUT"):
        shutil.copyfile(path, Path(os.environ["OUT"]) / path.name)
sys.exit(1 if failed else 0)
EOF
