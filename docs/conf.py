"""Sphinx configuration for ecco_sdk's API reference, built offline by `make docs`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "space"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

project = "ecco_sdk"
author = "ecco_sdk developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_nb"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "ecco_sdk API reference"
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# The notebooks are executed by tests/test_notebooks.py; the site shows their stored outputs.
nb_execution_mode = "off"
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]


def _copy_notebooks(src: Path, dst: Path) -> None:
    """Give the site its own copy of the executed notebooks (Sphinx reads only below docs/)."""
    dst.mkdir(exist_ok=True)
    for nb in sorted(src.glob("*.ipynb")):
        shutil.copyfile(nb, dst / nb.name)


def _type_name(param: dict) -> str:
    """The Python type gradio_client reports for one endpoint parameter."""
    return str(param.get("python_type", {}).get("type", "")).replace("|", "\\|")


def _endpoint_page(info: dict) -> str:
    """Markdown for every named endpoint: parameters with types and defaults, and what it returns."""
    lines = [
        "# App endpoints",
        "",
        "Every tab of `space/app.py` is an API endpoint for `gradio_client`:",
        "`Client(url).predict(..., api_name=NAME)`.",
        "This page is generated from the app itself when the site is built.",
        "",
    ]
    for name, ep in info.get("named_endpoints", {}).items():
        lines += [f"## `{name}`", "", "| parameter | type | default | widget |", "|---|---|---|---|"]
        for p in ep.get("parameters", []):
            default = json.dumps(p.get("parameter_default")) if p.get("parameter_has_default") else "required"
            lines.append(f"| `{p.get('parameter_name')}` | `{_type_name(p)}` | `{default}` | {p.get('label', '')} |")
        lines += ["", "Returns:", ""]
        lines += [f"- {r.get('label') or r.get('component')}: `{_type_name(r)}`" for r in ep.get("returns", [])]
        lines.append("")
    return "\n".join(lines)


def _write_app_page(dst: Path) -> None:
    """Build the Blocks app (no model is loaded) and describe its API."""
    import app

    dst.write_text(_endpoint_page(app.build_app().get_api_info()), encoding="utf-8")


def _prepare(_app) -> None:
    _copy_notebooks(ROOT / "notebooks", HERE / "notebooks")
    _write_app_page(HERE / "app-api.md")


def setup(app) -> None:
    app.connect("builder-inited", _prepare)
