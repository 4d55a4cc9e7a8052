"""Every example notebook runs top to bottom on a CPU machine, so the committed notebooks never rot.

Each ``examples/*.ipynb`` is copied to a temporary directory and executed there with nbclient, in
a kernel running this very interpreter (so it sees the same installed packages as pytest), with the
repository root as the working directory (the notebooks import ``cute_gemm``, ``layouts`` and
``schedulers`` from it). Any cell error fails the test with the cell's traceback; the committed
files are never modified. Cells that need a GPU (timings in 02 and 04) detect its absence and say
so, so the whole notebooks run here. Regenerate the committed outputs with ``python tools/make_notebooks.py``.
"""

import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="ipykernel not installed (pip install -e '.[test]')")
pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install -e '.[test]')")

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager  # noqa: E402  (nbclient needs it)
from jupyter_client.manager import KernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
TIMEOUT_S = 600  # per cell; every notebook takes well under a minute on 2 CPU cores


class _ThisInterpreter(KernelSpecManager):
    """Resolves every kernel name to an IPython kernel on ``sys.executable``.

    A ``python3`` kernelspec installed elsewhere (user or system Jupyter directories) could run
    another Python without this package's dependencies.
    """

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({sys.executable})",
            language="python",
            resource_dir=str(ROOT),
        )


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    expected = {"01_layouts.ipynb", "02_tile_changes.ipynb", "03_scheduler.ipynb", "04_moe.ipynb"}
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
    client = nbclient.NotebookClient(
        nb, km=km, timeout=TIMEOUT_S, resources={"metadata": {"path": str(ROOT)}}
    )
    try:
        client.execute()  # raises CellExecutionError (with the cell and traceback) on an error
    finally:
        nbformat.write(nb, copy)  # the executed copy, for a look when the test fails
    errors = [
        out for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
