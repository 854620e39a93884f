"""Drive the visuals in a real headless Chromium: the enhancing script must run cleanly and switch views."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ecco_sdk.render import Visual, factors_view, saliency_view

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
TOKENS = ["Heath", "row", " airport", " is", " located", " in", " the", " city", " of", " London", ",", " England"]


def _dump_dom(visual: Visual, action_js: str, tmp: Path) -> str:
    """Open the standalone document, run `action_js` after the visual's own script, return the resulting DOM."""
    page = tmp / "page.html"
    doc = visual.document().replace("</body>", f"<script>{action_js}</script></body>")
    page.write_text(doc, encoding="utf-8")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, *flags, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _classes(dom: str, pattern: str) -> str:
    """Class attribute of the first element whose opening tag matches `pattern`."""
    m = re.search(rf'<[^>]*class="([^"]*)"[^>]*{pattern}[^>]*>', dom)
    assert m, pattern
    return m.group(1)


@pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium binary (apt-get install chromium)")
def test_detailed_saliency_hover_switches_target(tmp_path: Path) -> None:
    attr = np.full((3, 12), np.nan)
    for j, t in enumerate([9, 10, 11]):
        attr[j, :t] = np.linspace(1, 2, t) / np.linspace(1, 2, t).sum()
    v = saliency_view(TOKENS, 9, attr, [9, 10, 11], style="detailed")
    hover = "document.querySelector('.ecco-tok[data-i=\"9\"]').dispatchEvent(new MouseEvent('mouseenter'));"
    dom = _dump_dom(v, hover + "document.body.setAttribute('data-done', '1');", tmp_path)
    assert 'data-done="1"' in dom  # no script error stopped the page
    assert "ecco-js" in _classes(dom, 'id="ecco-v-')
    assert "ecco-target" in _classes(dom, 'data-i="9"')
    assert "ecco-after" in _classes(dom, 'data-i="11"')
    assert re.search(r'ecco-live-caption">for <b> London</b> at position 9', dom)


@pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium binary (apt-get install chromium)")
def test_factor_row_click_switches_selected_factor(tmp_path: Path) -> None:
    f = np.full((2, 12), 0.1)
    f[0, 10], f[1, 9] = 1.0, 1.0
    v = factors_view(TOKENS, f, selected=1)
    dom = _dump_dom(v, "document.querySelector('.ecco-frow[data-f=\"0\"]').click();", tmp_path)
    assert "ecco-sel" in _classes(dom, 'data-f="0"')
    assert "ecco-sel" not in _classes(dom, 'data-f="1"')
    factor_text = dom[dom.index('data-ecco-text="factor"') :]
    blue = r'data-i="10"[^>]*><span class="ecco-tt" style="background-color: rgba?\(28, 126, 214'
    assert re.search(blue, factor_text)
