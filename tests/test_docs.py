"""The API reference site builds offline with warnings as errors and covers the SDK, the app and the notebooks."""

from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import ecco_sdk
import ecco_sdk.explain
from ecco_sdk.attribution import attribute_output

ROOT = Path(__file__).resolve().parent.parent
ANALYSES = ("attribution", "perturbation", "attention", "layer_attribution", "lens", "factors", "similarity")
ENDPOINTS = ("/generate", "/saliency", "/layers", "/rankings", "/nmf", "/explain")
MAX_PAGE_BYTES = 8 * 2**20  # the largest page (the SDK reference) is well under 1 MB


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"docs build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


def page(site: Path, name: str) -> str:
    """One built page's HTML (bounded read)."""
    path = site / name
    assert path.is_file(), f"{name} was not built"
    with path.open(encoding="utf-8") as fp:
        return fp.read(MAX_PAGE_BYTES)


def entry(text: str, anchor: str) -> str:
    """The HTML of one documented object, from its anchor to the next object's (its own members excluded)."""
    start = text.find(f'id="{anchor}"')
    assert start >= 0, f"no reference entry for {anchor}"
    end = text.find('<dt class="sig sig-object py" id="', start + 1)
    return text[start : end if end > 0 else len(text)]


def described(section: str, name: str) -> bool:
    """Whether a parameter list item for `name` carries a description, not only the type autodoc adds."""
    item = re.search(rf"<strong>(?:\*\*|\*)?{re.escape(name)}</strong>(.*?)</li>", section, re.S)
    return bool(item) and re.search(r"–\s*\S", html.unescape(item.group(1))) is not None


def parameters(fn: Callable) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


@pytest.mark.parametrize(
    ("page_name", "anchor", "fn"),
    [
        ("api.html", "ecco_sdk.LM.generate", ecco_sdk.LM.generate),
        ("api.html", "ecco_sdk.from_pretrained", ecco_sdk.from_pretrained),
        ("analyses/attribution.html", "ecco_sdk.attribution.attribute_output", attribute_output),
        ("explain.html", "ecco_sdk.explain.explain_factors", ecco_sdk.explain.explain_factors),
    ],
)
def test_main_functions_document_every_parameter(site: Path, page_name: str, anchor: str, fn: Callable) -> None:
    section = entry(page(site, page_name), anchor)
    assert "Parameters" in section and "Returns" in section, anchor  # napoleon turned Args:/Returns: into fields
    missing = [name for name in parameters(fn) if not described(section, name)]
    assert not missing, f"{anchor} leaves {missing} undocumented"
    assert "temperature" not in parameters(fn) or described(section, "temperature")


def test_every_top_level_name_has_a_reference_entry(site: Path) -> None:
    text = "".join(page(site, p) for p in ("api.html", "errors.html"))
    names = [n for n in ecco_sdk.__all__ if not n.startswith("__")]
    missing = [n for n in names if f'id="ecco_sdk.{n}"' not in text and f'id="ecco_sdk.errors.{n}"' not in text]
    assert not missing, f"ecco_sdk exports without a reference entry: {missing}"
    assert len(names) >= 15


def test_every_explain_name_has_a_reference_entry(site: Path) -> None:
    text = page(site, "explain.html")
    missing = [n for n in ecco_sdk.explain.__all__ if f'id="ecco_sdk.explain.{n}"' not in text]
    assert not missing, f"ecco_sdk.explain exports without a reference entry (add them to docs/explain.md): {missing}"
    assert len(ecco_sdk.explain.__all__) >= 40


def test_explain_entries_show_args_returns_and_raises(site: Path) -> None:
    text = page(site, "explain.html")
    for name in ("load_library", "open_store", "get_embedder", "make_retriever", "format_explanations"):
        section = entry(text, f"ecco_sdk.explain.{name}")
        assert "Parameters" in section and "Returns" in section, name
    assert "ConfigurationError" in entry(text, "ecco_sdk.explain.load_library")
    assert 'href="errors.html#ecco_sdk.errors.InputError"' in entry(text, "ecco_sdk.explain.explain_factors")


@pytest.mark.parametrize("module", ANALYSES)
def test_each_analysis_module_has_a_page(site: Path, module: str) -> None:
    text = page(site, f"analyses/{module}.html")
    assert f'id="module-ecco_sdk.{module}"' in text
    documented = re.findall(rf'<dt class="sig sig-object py" id="ecco_sdk\.{module}\.\w+', text)
    assert documented, f"the {module} page documents no function or class"
    assert "Parameters" in text


def test_app_endpoints_page_documents_every_endpoint(site: Path) -> None:
    text = page(site, "app-api.html")
    for endpoint in ENDPOINTS:
        assert endpoint in text, endpoint
    start = text.find('<section id="saliency">')
    assert start >= 0, "no /saliency section"
    saliency = text[start : text.find("<section", start + 1)]
    for param in ("run_id", "method", "n_steps"):
        assert f'<code class="docutils literal notranslate"><span class="pre">{param}</span></code>' in saliency
    assert "Input attribution" in saliency and "Returns" in saliency  # the endpoint's description and results


def test_notebooks_are_pages(site: Path) -> None:
    pages = sorted(p.name for p in (site / "notebooks").glob("*.html"))
    expected = sorted(p.with_suffix(".html").name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert pages == expected and len(pages) >= 9


def test_index_links_every_part(site: Path) -> None:
    text = page(site, "index.html")
    parts = ("api.html", "analyses/index.html", "render.html", "explain.html", "errors.html", "app-api.html")
    for href in (*parts, "notebooks.html"):
        assert f'href="{href}"' in text, href
    assert 'href="api.html#ecco_sdk.LM.generate"' in text  # the start-here steps link into the reference
