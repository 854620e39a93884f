"""Sphinx configuration for ecco_sdk's API reference, built offline by `make docs`."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "space"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

project = "ecco_sdk"
author = "ecco_sdk developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_nb"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute"]
html_theme = "alabaster"
html_title = "ecco_sdk API reference"
html_theme_options = {"description": "Explore and explain what language models do inside", "fixed_sidebar": True}
# `name` in a docstring links to that object when Sphinx knows it, and reads as code when it does not.
default_role = "py:obj"
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes: sections become fields of their class rather than a second entry beside autodoc's own one.
napoleon_use_ivar = True
# The notebooks are executed by tests/test_notebooks.py; the site shows their stored outputs.
nb_execution_mode = "off"
myst_heading_anchors = 3
# ref.python: a `name` that several classes define (to_dict, load) is left unlinked instead of failing -W.
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure", "ref.python"]

#: Where the app's serving and deploy code lives: the `ecco_sdk.app` package, or the older flat modules.
#: Each group is documented by its first module that imports.
APP_MODULES = (("ecco_sdk.app", "ecco_sdk.serving"), ("ecco_sdk.app.publish", "ecco_sdk.publish"))


def _copy_notebooks(src: Path, dst: Path) -> None:
    """Give the site its own copy of the executed notebooks (Sphinx reads only below docs/), dropping stale ones."""
    dst.mkdir(exist_ok=True)
    wanted = {nb.name for nb in src.glob("*.ipynb")}
    for old in dst.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    for name in sorted(wanted):
        shutil.copyfile(src / name, dst / name)


def _type_name(param: dict[str, Any]) -> str:
    """The Python type gradio_client reports for one endpoint parameter."""
    return str(param.get("python_type", {}).get("type", "")).replace("|", "\\|")


def _cell(text: Any) -> str:
    """One Markdown table cell: no line breaks, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _endpoint_page(info: dict[str, Any], app_modules: list[str]) -> str:
    """Markdown for every named endpoint: what it does, its parameters with types and defaults, and its results."""
    lines = [
        "# App endpoints",
        "",
        "Every tab of `space/app.py` is an API endpoint for `gradio_client`:",
        "`Client(url).predict(..., api_name=NAME)`, with the parameters in the order listed.",
        "This page is generated from the app itself when the site is built.",
        "",
        "```python",
        "from gradio_client import Client",
        'c = Client("http://127.0.0.1:7860/")',
        'html, run = c.predict("The capital of France is", "smollm2-135m-instruct", 8, api_name="/generate")',
        'html, sal = c.predict(run["run_id"], "ig", "minimal", -1, 16, api_name="/saliency")',
        "```",
        "",
    ]
    for name, ep in info.get("named_endpoints", {}).items():
        lines += [f"## `{name}`", ""]
        if ep.get("description"):
            lines += [_cell(ep["description"]), ""]
        lines += ["Parameters:", "", "| parameter | type | default | description |", "|---|---|---|---|"]
        for p in ep.get("parameters", []):
            default = json.dumps(p.get("parameter_default")) if p.get("parameter_has_default") else "required"
            row = [
                f"`{p.get('parameter_name')}`",
                f"`{_type_name(p)}`",
                f"`{_cell(default)}`",
                _cell(p.get("label", "")),
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Returns:", ""]
        lines += [f"- {_cell(r.get('label') or r.get('component'))}: `{_type_name(r)}`" for r in ep.get("returns", [])]
        lines.append("")
    if app_modules:
        lines += ["## Serving and deploy code", "", "The limits, model allow-list, run cache and deploy code behind"]
        lines += ["these endpoints, for running the app elsewhere or publishing it as a Space.", ""]
    for name in app_modules:
        # A package re-exports its parts: document them under the package's name, once.
        imported = "   :imported-members:" if hasattr(importlib.import_module(name), "__all__") else ""
        lines += ["```{eval-rst}", f".. automodule:: {name}", imported, "```", ""]
    return "\n".join(lines)


def _app_modules() -> list[str]:
    """Per group of APP_MODULES, the first module that imports (the app code moved into `ecco_sdk.app`)."""
    found = []
    for group in APP_MODULES:
        for name in group:
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            found.append(name)
            break
    return found


def _write_app_page(dst: Path) -> None:
    """Build the Blocks app (no model is loaded) and describe its API."""
    import app

    text = _endpoint_page(app.build_app().get_api_info(), _app_modules())
    if not dst.exists() or dst.read_text(encoding="utf-8") != text:  # unchanged: Sphinx need not re-read it
        dst.write_text(text, encoding="utf-8")


def _prepare(_app: Any) -> None:
    _copy_notebooks(ROOT / "notebooks", HERE / "notebooks")
    _write_app_page(HERE / "app-api.md")


def setup(app: Any) -> None:
    app.connect("builder-inited", _prepare)
