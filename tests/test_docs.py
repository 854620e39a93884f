"""The API reference site builds offline with warnings as errors and covers the SDK, the app and the notebooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, f"docs build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


def test_sdk_reference_documents_public_functions(site: Path) -> None:
    api = (site / "api.html").read_text(encoding="utf-8")
    for name in ("from_pretrained", "OutputSeq", "list_models", "InputError"):
        assert name in api, name
    assert "Parameters" in api  # napoleon turned an Args: section into a parameter list


def test_app_endpoints_page_lists_every_endpoint(site: Path) -> None:
    page = (site / "app-api.html").read_text(encoding="utf-8")
    for endpoint in ("/generate", "/saliency", "/rankings", "/nmf", "/explain"):
        assert endpoint in page, endpoint


def test_notebooks_are_pages(site: Path) -> None:
    pages = sorted(p.name for p in (site / "notebooks").glob("*.html"))
    expected = sorted(p.with_suffix(".html").name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert pages == expected and len(pages) >= 9
