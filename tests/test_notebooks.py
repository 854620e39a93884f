"""The tutorial notebooks run top to bottom on the embedded models, and the committed copies are built and executed.

Every notebook has a jupytext percent-format source, notebooks/NN-name.py, and the committed .ipynb must hold
exactly its cells. Every notebooks/*.ipynb is executed (a notebook added later is picked up without touching this
file) in a copy under a temporary folder, by a kernel of this very interpreter, and a cell error fails its test.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
MAX_TOTAL_BYTES = 3 * 1024 * 1024
KERNEL_NAME = "ecco-sdk-tests"


def _build_script() -> ModuleType:
    """notebooks/build.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("ecco_notebooks_build", NOTEBOOK_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    """The build script's cells and execution helper."""
    return _build_script()


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory) -> Iterator[str]:
    """A kernelspec launching sys.executable, first on JUPYTER_PATH whatever other 'python3' kernels exist."""
    from ipykernel.kernelspec import write_kernel_spec

    data_dir = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(data_dir / "kernels" / KERNEL_NAME)  # argv: [sys.executable, "-m", "ipykernel_launcher", ...]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(data_dir))
        yield KERNEL_NAME


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _execute(build: ModuleType, source: Path, workdir: Path, kernel: str) -> nbformat.NotebookNode:
    """Execute a copy of a notebook in `workdir`, turning a cell error into a readable test failure."""
    from nbclient.exceptions import CellExecutionError

    copy = workdir / source.name
    shutil.copy(source, copy)
    nb = nbformat.read(copy, as_version=4)
    try:
        build.execute(nb, workdir, kernel_name=kernel)
    except CellExecutionError as err:
        pytest.fail(f"{source.name}: a cell raised\n{err}", pytrace=False)
    return nb


# ----------------------------------------------------------------------------------------- committed notebooks


def _cells_to_compare(build: ModuleType, stem: str, source: Path, notebook: Path) -> tuple[list, list]:
    """(committed, expected) cells of `notebook` and of the notebook that `source` builds, as (kind, source)."""
    committed = nbformat.read(notebook, as_version=4)
    expected = build.make_notebook(stem, build.read_cells(source))
    return [(c.cell_type, c.source) for c in committed.cells], [(c.cell_type, c.source) for c in expected.cells]


def test_every_notebook_source_is_committed(build):
    committed = {p.stem for p in NOTEBOOKS}
    missing = [stem for stem in build.NOTEBOOKS if stem not in committed]
    assert not missing, f"run `.venv/bin/python notebooks/build.py` to write {missing}"


def test_every_committed_notebook_has_a_source(build):
    assert build.NOTEBOOKS and "build" not in build.NOTEBOOKS
    orphans = [p.name for p in NOTEBOOKS if p.stem not in build.NOTEBOOKS]
    assert not orphans, f"{orphans} have no notebooks/<name>.py source: convert with `jupytext --to py:percent`"


@pytest.mark.parametrize("stem", list(_build_script().NOTEBOOKS))
def test_committed_notebook_matches_its_source(build, stem):
    """Notebooks are built: a hand edit, or a source changed without rebuilding, shows up here."""
    path = NOTEBOOK_DIR / f"{stem}.ipynb"
    if not path.exists():
        pytest.fail(f"{path.name} is missing; run `.venv/bin/python notebooks/build.py {stem[:2]}`")
    committed, expected = _cells_to_compare(build, stem, build.NOTEBOOKS[stem], path)
    assert committed == expected, f"rebuild with `.venv/bin/python notebooks/build.py {stem[:2]}`"


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.rstrip("\n") + " (edited)\n",  # a changed line in the last cell
        lambda text: text + '\n# %%\nprint("added to the source only")\n',  # a new code cell
    ],
    ids=["changed-line", "added-cell"],
)
def test_a_source_edited_without_rebuilding_fails_the_match(build, tmp_path, edit):
    stem, source = next(iter(build.NOTEBOOKS.items()))
    notebook = NOTEBOOK_DIR / f"{stem}.ipynb"
    copy = tmp_path / source.name
    text = source.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    committed, expected = _cells_to_compare(build, stem, copy, notebook)
    assert committed == expected  # the untouched copy matches: only the edit can make the check fail
    copy.write_text(edit(text), encoding="utf-8")
    committed, expected = _cells_to_compare(build, stem, copy, notebook)
    assert committed != expected


def test_magics_commented_out_in_a_source_come_back_in_its_notebook(build):
    """Sources comment `%matplotlib inline` out (so ruff can parse them); the notebook must run it."""
    with_magic = [p for p in build.NOTEBOOKS.values() if "\n# %matplotlib inline\n" in p.read_text(encoding="utf-8")]
    assert with_magic
    for source in with_magic:
        code = [text for kind, text in build.read_cells(source) if kind == "code"]
        assert any(text.splitlines()[0] == "%matplotlib inline" for text in code), source.name
        assert not any("# %matplotlib" in text for text in code), source.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_was_executed_without_errors(path):
    """Outputs are saved: every code cell ran, in order, and none of them failed."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = _code_cells(nb)
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"{path.name} has unexecuted cells; rebuild it with notebooks/build.py"
    assert counts == sorted(counts), f"{path.name} was executed out of order: {counts}"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} was saved with an error: {errors[0].ename}: {errors[0].evalue}"


def test_committed_notebooks_stay_small():
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert NOTEBOOKS and total < MAX_TOTAL_BYTES, f"notebooks take {total / 1e6:.2f} MB together"


# ------------------------------------------------------------------------------------------------- execution


@pytest.mark.slow
def test_the_kernel_is_this_interpreter(build, venv_kernel, tmp_path):
    """The notebooks must run against the same environment (and ecco_sdk) as the tests."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, ecco_sdk\nprint(sys.executable)\nprint(ecco_sdk.__file__)")]
    build.execute(nb, tmp_path, kernel_name=venv_kernel)
    printed = nb.cells[0].outputs[0].text.split()
    import ecco_sdk

    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert Path(printed[1]).resolve() == Path(ecco_sdk.__file__).resolve()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(build, venv_kernel, path, tmp_path):
    nb = _execute(build, path, tmp_path, venv_kernel)
    cells = _code_cells(nb)
    assert cells and all(c.execution_count is not None for c in cells)
    assert not any(o.output_type == "error" for c in cells for o in c.outputs)
