"""The Visual container: one self-contained HTML fragment that Jupyter, Gradio and files all show the same way."""

from __future__ import annotations

import html
import json
import os
import secrets
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ecco_sdk.errors import InputError

_ID_TOKEN = "__ID__"

_DOC_STYLE = (
    "html,body{margin:0}body.ecco-doc{padding:24px;background:#f3f5f7;"
    'font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}'
    "@media (prefers-color-scheme:dark){body.ecco-doc{background:#0f1115}}"
    "body.ecco-doc>.ecco-root{margin:0 auto 16px;max-width:1200px}"
)


@lru_cache(maxsize=4)
def _asset(name: str) -> str:
    """Read a bundled CSS/JS asset once, so every visual embeds it without any network access."""
    return resources.files("ecco_sdk.render").joinpath("assets", name).read_text(encoding="utf-8")


def new_id() -> str:
    """A fresh element id, so several visuals on one page never share styles or scripts.

    Returns:
        An id such as "ecco-v-1a2b3c4d5e".
    """
    return f"ecco-v-{secrets.token_hex(5)}"


def scoped_css(root_id: str) -> str:
    """The shared stylesheet with every selector scoped under one visual's id.

    Args:
        root_id: The visual's element id.

    Returns:
        The CSS text.
    """
    return _asset("ecco.css").replace(_ID_TOKEN, root_id)


def behaviour_js(root_id: str) -> str:
    """The optional enhancing script bound to one visual's id (views stay complete without it).

    Args:
        root_id: The visual's element id.

    Returns:
        The JavaScript text.
    """
    return _asset("ecco.js").replace(_ID_TOKEN, root_id)


def state_attr(state: dict[str, Any]) -> str:
    """Serialise view state for the enhancing script into an escaped attribute (no <script> data blocks).

    Args:
        state: JSON-serializable view state.

    Returns:
        The escaped JSON, ready for an HTML attribute value.
    """
    text = json.dumps(state, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")
    return html.escape(text, quote=True)


def wrap(root_id: str, kind: str, body: str, *, state: dict[str, Any] | None = None) -> str:
    """Wrap a view's markup in its scoped root element with the inline stylesheet.

    Args:
        root_id: The visual's element id.
        kind: The view's kind, e.g. "factors", written as data-ecco-kind.
        body: The view's trusted markup.
        state: View state for the enhancing script (None: none).

    Returns:
        The root element's HTML.
    """
    data = f' data-ecco-state="{state_attr(state)}"' if state is not None else ""
    return (
        f'<div class="ecco-root ecco-{kind}" id="{root_id}" data-ecco-kind="{kind}"{data}>'
        f"<style>{scoped_css(root_id)}</style>{body}</div>"
    )


class Visual:
    """Holds one rendered view, so the same HTML can go to a notebook, a Gradio page or a standalone file.

    Args:
        html_fragment: The view's markup.
        title: The page title used by `document` and `to_html`.
        script: The enhancing script, kept apart from the markup.
        kind: The view's kind, e.g. "factors".
    """

    def __init__(
        self, html_fragment: str, *, title: str = "ecco_sdk visual", script: str = "", kind: str = "visual"
    ) -> None:
        """Keep markup and enhancing script apart, so script-free hosts can take the markup alone."""
        if not isinstance(html_fragment, str):
            raise InputError(f"Visual needs an HTML string, got {type(html_fragment).__name__}.")
        self._html = html_fragment
        self._script = script
        self.title = title
        self.kind = kind

    @property
    def html(self) -> str:
        """The HTML fragment (with its enhancing script, if any) to embed in a page."""
        return self._html + (f"<script>{self._script}</script>" if self._script else "")

    @property
    def static_html(self) -> str:
        """The fragment without any <script>, for hosts that do not run scripts (e.g. Gradio's gr.HTML)."""
        return self._html

    def _repr_html_(self) -> str:
        """Jupyter display hook."""
        return self.html

    def document(self) -> str:
        """A complete standalone HTML document holding this visual.

        Returns:
            The document's HTML.
        """
        return (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_DOC_STYLE}</style>\n</head>\n"
            f'<body class="ecco-doc">\n{self.html}\n</body>\n</html>\n'
        )

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the visual as a standalone HTML file (works offline) and return its path.

        Args:
            path: The file to write.

        Returns:
            The path written.
        """
        target = Path(path)
        if target.is_dir():
            raise InputError(f"{target} is a directory: pass a file path such as {target / 'visual.html'}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.document(), encoding="utf-8")
        return target

    @classmethod
    def combine(cls, visuals: Sequence[Visual], title: str = "ecco_sdk visuals") -> Visual:
        """Put several visuals on one page (each keeps its own scoped styles).

        Args:
            visuals: The visuals, in page order.
            title: The page title.

        Returns:
            One Visual holding them all.
        """
        if not visuals or not all(isinstance(v, Visual) for v in visuals):
            raise InputError("combine needs a non-empty list of Visual objects.")
        body = "".join(v.static_html for v in visuals)
        return cls(body, title=title, script="".join(v._script for v in visuals), kind="combined")

    def __repr__(self) -> str:
        """Short summary instead of pages of HTML in consoles."""
        size = len(self.html)
        return f"<Visual {self.kind} {self.title!r} ({size / 1024:.1f} kB HTML)>"
