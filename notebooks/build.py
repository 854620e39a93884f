"""Build the tutorial notebooks from their jupytext sources, then execute them in place so outputs are saved.

Every notebook has one source, notebooks/NN-name.py, in jupytext's percent format: `# %%` opens a code cell,
`# %% [markdown]` a markdown cell (its lines commented out), and IPython magics such as `%matplotlib inline`
are written commented out, so ruff lints the sources like any other Python. Edit the .py file (in an editor, or
in Jupyter through jupytext), then rerun this script: the committed .ipynb files are built from the sources and
never edited by hand. Everything runs offline on the embedded models.

    .venv/bin/python notebooks/build.py                 # build and execute every notebook
    .venv/bin/python notebooks/build.py 03 05           # only the notebooks whose names start with these
    .venv/bin/python notebooks/build.py --no-execute    # write the cells only (outputs cleared)

tests/test_notebooks.py fails when a committed .ipynb differs from its source, and executes every notebook.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
SOURCE_FORMAT = "py:percent"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT_S = 900
# Quiet, offline kernels: no hub, no telemetry, no tokenizers fork warnings.
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}

Cell = tuple[str, str]  # ("markdown" | "code", source)


def sources(folder: Path = HERE) -> dict[str, Path]:
    """Every notebook source in `folder` by stem: each .py file there except this build script."""
    return {p.stem: p for p in sorted(folder.glob("*.py")) if p.name != Path(__file__).name}


NOTEBOOKS: dict[str, Path] = sources()


def read_cells(source: Path) -> list[Cell]:
    """The cells of a percent-format source as Jupyter runs them (magics uncommented)."""
    return notebook_cells(jupytext.read(source, fmt=SOURCE_FORMAT))


def notebook_cells(nb: nbformat.NotebookNode) -> list[Cell]:
    """A notebook's cells as (kind, source), the form in which a source and its built notebook are compared."""
    return [(c.cell_type, c.source) for c in nb.cells]


def make_notebook(stem: str, cells: list[Cell]) -> nbformat.NotebookNode:
    """An nbformat notebook with stable cell ids (so rebuilding changes only what changed)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source, id=f"{stem[:2]}-{i:02d}"))
    return nb


def execute(
    nb: nbformat.NotebookNode, cwd: Path, kernel_name: str = KERNEL["name"], timeout: int = CELL_TIMEOUT_S
) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel, in `cwd`; a cell error raises nbclient's CellExecutionError.

    The default "python3" kernel started from this interpreter runs this interpreter (jupyter_client swaps a
    kernelspec's bare "python" for sys.executable), so run the script with the project's .venv/bin/python.
    """
    from nbclient import NotebookClient

    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}}, record_timing=False
    )
    client.execute()
    return nb


def build(stem: str, run: bool = True) -> Path:
    """Write one notebook from its source, executed with outputs unless `run` is False."""
    nb = make_notebook(stem, read_cells(NOTEBOOKS[stem]))
    if run:
        execute(nb, HERE)
    path = HERE / f"{stem}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: build the selected notebooks and report the time and size of each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="build only notebooks whose names start with these (e.g. 03)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    args = parser.parse_args(argv)
    stems = [s for s in NOTEBOOKS if not args.only or any(s.startswith(p) for p in args.only)]
    if not stems:
        parser.error(f"no notebook matches {args.only}; known: {', '.join(NOTEBOOKS)}")
    for stem in stems:
        start = time.perf_counter()
        path = build(stem, run=not args.no_execute)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1024:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
