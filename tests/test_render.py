"""Fast structure checks of ecco_sdk.render (no models): token counts, escaping, colours, errors, figures."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ecco_sdk.errors import InputError
from ecco_sdk.render import (
    Visual,
    factors_view,
    figure_to_html,
    figure_to_png_bytes,
    layer_predictions_figure,
    rankings_figure,
    rankings_watch_figure,
    saliency_view,
    sequence_view,
    similarity_figure,
    sparkline_svg,
    token_label,
)
from ecco_sdk.render.tokens import token_parts
from ecco_sdk.tokens import normalise_token

TOKENS = ["Heath", "row", " airport", " is", " located", " in", " the", " city", " of", " London", ",", " England"]
N_IN = 9
CANDS = [
    [" London", " Heath", " Birmingham"],
    [",", ".", " and"],
    [" England", " UK", " United"],
]
PROBS = np.array([[0.43, 0.06, 0.04], [0.55, 0.21, 0.08], [0.71, 0.12, 0.05]])
TARGETS = [9, 10, 11]


def _attributions() -> np.ndarray:
    """Normalised attributions for the three generated tokens; NaN after each target."""
    attr = np.full((3, len(TOKENS)), np.nan)
    base = np.array([0.30, 0.22, 0.12, 0.02, 0.04, 0.03, 0.02, 0.08, 0.05, 0.30, 0.04])
    for j, t in enumerate(TARGETS):
        attr[j, :t] = base[:t] / base[:t].sum()
    return attr


def _factors() -> np.ndarray:
    """Three factors: punctuation, place names, function words."""
    f = np.full((3, len(TOKENS)), 0.05)
    f[0, 10] = 2.0
    f[1, [0, 1, 9, 11]] = [1.0, 0.8, 1.5, 1.2]
    f[2, [3, 5, 6, 8]] = [0.7, 0.9, 1.0, 0.6]
    return f


def _text(html: str, name: str) -> str:
    """The inner markup of one text block (data-ecco-text=name) up to the next block."""
    start = html.index(f'data-ecco-text="{name}"')
    end = html.find("data-ecco-text=", start + 10)
    return html[start : end if end > 0 else len(html)]


def _body(html: str) -> str:
    """Markup without the inline stylesheet and script, so class counts only see elements."""
    return re.sub(r"<(style|script)>.*?</\1>", "", html, flags=re.S)


def _tokens(html: str) -> list[str]:
    """Opening tags of the token elements."""
    return re.findall(r'<span class="ecco-tok[^"]*" data-i="\d+"[^>]*>', html)


def _alpha(html: str, index: int) -> float:
    """Highlight opacity of token `index` (0 when it has no background)."""
    m = re.search(rf'data-i="{index}"[^>]*><span class="ecco-tt"(?: style="([^"]*)")?', html)
    assert m, f"token {index} not found"
    rgba = re.search(r"rgba\(\d+,\d+,\d+,([\d.]+)\)", unescape(m.group(1) or ""))
    return float(rgba.group(1)) if rgba else 0.0


def _all_visuals() -> list[Visual]:
    """One of each HTML view."""
    return [
        sequence_view(TOKENS, N_IN, CANDS, PROBS),
        saliency_view(TOKENS, N_IN, _attributions(), TARGETS),
        saliency_view(TOKENS, N_IN, _attributions(), TARGETS, style="detailed", method="IG"),
        factors_view(TOKENS, _factors(), explanations=["punctuation", "places", "function words"]),
    ]


# ---------------------------------------------------------------- Visual


def test_visual_repr_html_and_standalone_document(tmp_path: Path) -> None:
    v = saliency_view(TOKENS, N_IN, _attributions(), TARGETS, style="detailed", method="IG")
    assert v._repr_html_() == v.html
    assert "<script>" in v.html and "<script" not in v.static_html
    assert len(repr(v)) < 120 and "saliency" in repr(v)
    path = v.to_html(tmp_path / "sub" / "view.html")
    doc = path.read_text(encoding="utf-8")
    assert doc.lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in doc and "<title>Input attribution — IG</title>" in doc
    assert v.html in doc and doc.rstrip().endswith("</html>")
    with pytest.raises(InputError):
        v.to_html(tmp_path)


def test_visual_ids_are_unique_and_css_is_scoped() -> None:
    a, b = sequence_view(TOKENS, N_IN, CANDS, PROBS), sequence_view(TOKENS, N_IN, CANDS, PROBS)
    id_a = re.search(r'id="(ecco-v-[0-9a-f]+)"', a.html).group(1)
    id_b = re.search(r'id="(ecco-v-[0-9a-f]+)"', b.html).group(1)
    assert id_a != id_b
    css = "".join(re.findall(r"<style>(.*?)</style>", a.html, flags=re.S))
    css_no_values = re.sub(r"\{[^{}]*\}", "{}", re.sub(r"@media[^{]*\{", "", css))
    for selector in re.findall(r"([^{}]+)\{\}", css_no_values):
        for part in selector.split(","):
            assert id_a in part, f"unscoped selector {part!r}"
    classes = set(re.findall(r"\.([A-Za-z_][\w-]*)", css_no_values))
    assert {c for c in classes if not c.startswith("ecco-")} <= {"dark", "vscode-dark"}
    combined = Visual.combine([a, b])
    assert combined.html.count('class="ecco-root') == 2


def test_outputs_are_offline_and_escaped() -> None:
    for v in _all_visuals():
        doc = v.document()
        for needle in ("http://", "https://", "//cdn", "@import", "url("):
            assert needle not in doc, (v, needle)
        assert not re.search(r'\b(src|href)\s*=\s*"(?!data:)', doc)
    url_tokens = ["see", " https://example.com/x", "<script>alert(1)</script>", " ok"]
    v = saliency_view(url_tokens, 2, np.array([[0.2, 0.5, 0.3]]), [3])
    assert "<script>alert" not in v.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in v.html
    outside_tokens = re.sub(r'<span class="ecco-tok.*?</span></span>', "", v.html)
    assert "https://" not in re.sub(r'title="[^"]*"', "", outside_tokens)


# ---------------------------------------------------------------- tokens


def test_token_display_normalisation() -> None:
    assert normalise_token("Ġairport") == " airport"
    assert normalise_token("▁the") == " the"
    assert normalise_token("âĢĻ") == "’"
    assert normalise_token("ĊĊ") == "\n\n"
    parts = token_parts(" London")
    assert (parts.lead, parts.text, parts.breaks) == (" ", "London", 0)
    assert token_parts("ĊĊ").breaks == 2
    assert token_parts("##ing", wordpiece=True).continuation
    assert token_label("\tx\n") == "⇥x↵"
    v = sequence_view(["a", "\n", "\tb", " c"], 3, [[" c", " d"]], [[0.6, 0.4]])
    assert "↵" in v.html and "⇥" in v.html and "<br>" in v.html
    assert '<span class="ecco-gap"> </span>' in v.html


def test_wordpiece_continuations_join_and_words_get_gaps() -> None:
    v = factors_view(["[CLS]", "un", "##believ", "##able", "cat", "[SEP]"], np.ones((1, 6)))
    text = _text(v.html, "all")
    assert text.count('class="ecco-gap"') == 3  # before un, cat, [SEP]
    assert text.count("ecco-cont") == 2 and "##" not in re.sub(r'title="[^"]*"', "", text)


# ---------------------------------------------------------------- sequence view


def test_sequence_view_structure() -> None:
    v = sequence_view(TOKENS, N_IN, CANDS, PROBS)
    main = _text(v.html, "main")
    assert len(_tokens(main)) == len(TOKENS)
    assert len(re.findall(r'class="ecco-tok ecco-gen"', main)) == 3
    body = _body(v.html)
    assert body.count('<div class="ecco-card"') == 3
    assert len(re.findall(r'class="ecco-cand(?: ecco-chosen)?"', body)) == 9
    assert body.count("ecco-chosen") == 3  # generated tokens found among candidates
    assert "43.0%" in v.html and "width:43.0%" in v.html


def test_sequence_view_explicit_chosen_and_errors() -> None:
    v = sequence_view(TOKENS, N_IN, CANDS, PROBS, chosen=[1, None, -1])
    assert _body(v.html).count("ecco-chosen") == 1
    with pytest.raises(InputError, match="3 generated tokens"):
        sequence_view(TOKENS, N_IN, CANDS[:2], PROBS[:2])
    with pytest.raises(InputError, match="shape"):
        sequence_view(TOKENS, N_IN, CANDS, PROBS[:, :2])
    with pytest.raises(InputError, match="n_input_tokens"):
        sequence_view(TOKENS, 13, CANDS, PROBS)
    with pytest.raises(InputError, match="probabilities"):
        sequence_view(TOKENS, N_IN, CANDS, PROBS * 3)
    with pytest.raises(InputError, match="chosen"):
        sequence_view(TOKENS, N_IN, CANDS, PROBS, chosen=[0, 0])
    with pytest.raises(InputError):
        sequence_view("Heathrow", 1, CANDS, PROBS)


# ---------------------------------------------------------------- saliency views


def test_saliency_minimal_colours_follow_values() -> None:
    attr = _attributions()
    v = saliency_view(TOKENS, N_IN, attr, TARGETS, target=0)
    main = _text(v.html, "main")
    assert len(_tokens(main)) == len(TOKENS)
    assert attr[0, 0] > attr[0, 2] > attr[0, 6]
    assert _alpha(main, 0) > _alpha(main, 2) > _alpha(main, 6) > 0
    assert re.search(r'class="ecco-tok ecco-gen ecco-target" data-i="9"', main)
    assert re.search(r'class="ecco-tok ecco-gen ecco-after" data-i="11"', main)
    assert "<script" not in v.html  # the minimal view is static
    last = saliency_view(TOKENS, N_IN, attr, TARGETS)  # default target: the last one
    assert re.search(r'ecco-target" data-i="11"', last.html)


def test_saliency_detailed_shows_numbers_and_state() -> None:
    attr = _attributions()
    v = saliency_view(TOKENS, N_IN, attr, TARGETS, style="detailed", method="Integrated Gradients")
    main = _text(v.html, "main")
    assert len(_tokens(main)) == len(TOKENS)
    assert main.count('class="ecco-val"') == len(TOKENS)
    for value in attr[2, :11]:
        assert f"{100 * value:.1f}%" in main
    state = json.loads(unescape(re.search(r'data-ecco-state="([^"]*)"', v.html).group(1)))
    assert state["kind"] == "saliency" and state["selected"] == 2
    assert [t["pos"] for t in state["targets"]] == TARGETS
    assert all(len(t["cells"]) == len(TOKENS) for t in state["targets"])
    assert "Integrated Gradients" in v.html


def test_saliency_signed_uses_diverging_scale() -> None:
    attr = _attributions()
    attr[:, 3:6] *= -1
    v = saliency_view(TOKENS, N_IN, attr, TARGETS, style="detailed")
    assert "rgba(217,72,15," in v.html and "rgba(103,65,217," in v.html  # negative orange, positive violet
    assert "−" in v.html and "+" in v.html and "negative" in v.html


def test_saliency_errors() -> None:
    attr = _attributions()
    with pytest.raises(InputError, match="target_positions"):
        saliency_view(TOKENS, N_IN, attr, TARGETS[:2])
    with pytest.raises(InputError, match="columns"):
        saliency_view(TOKENS[:5], 3, attr, [3, 4, 4])
    with pytest.raises(InputError, match="style"):
        saliency_view(TOKENS, N_IN, attr, TARGETS, style="fancy")
    with pytest.raises(InputError, match="target"):
        saliency_view(TOKENS, N_IN, attr, TARGETS, target=3)
    with pytest.raises(InputError, match="2-dimensional"):
        saliency_view(TOKENS, N_IN, attr[0], TARGETS)
    with pytest.raises(InputError, match="needs a value"):
        saliency_view(TOKENS, N_IN, attr[:, :8], TARGETS)


# ---------------------------------------------------------------- factors view


def test_factors_view_structure() -> None:
    top = [[(5, 12, 0.9), (6, 3, 0.5)], [(2, 7, 0.4)], []]
    v = factors_view(TOKENS, _factors(), top_neurons=top, explanations=["<b>commas</b>", None, "glue"], selected=1)
    assert len(re.findall(r'class="ecco-frow[ "]', v.html)) == 3
    assert v.html.count("<polyline") == 3
    assert "L5 · N12" in v.html and "&lt;b&gt;commas&lt;/b&gt;" in v.html
    for name in ("all", "factor"):
        assert len(_tokens(_text(v.html, name))) == len(TOKENS)
    assert re.search(r'class="ecco-frow ecco-sel" data-f="1"', v.html)
    sel = _text(v.html, "factor")
    assert _alpha(sel, 9) > _alpha(sel, 11) > _alpha(sel, 0) > _alpha(sel, 3)
    all_text = _text(v.html, "all")
    assert re.search(r'data-i="10"[^>]*><span class="ecco-tt" style="background-color:rgba\(28,126,214,1\)', all_text)
    state = json.loads(unescape(re.search(r'data-ecco-state="([^"]*)"', v.html).group(1)))
    assert len(state["factors"]) == 3 and state["selected"] == 1


def test_factors_view_errors() -> None:
    f = _factors()
    with pytest.raises(InputError, match="positions"):
        factors_view(TOKENS[:-1], f)
    with pytest.raises(InputError, match="non-negative"):
        factors_view(TOKENS, -f)
    with pytest.raises(InputError, match="top_neurons"):
        factors_view(TOKENS, f, top_neurons=[[]])
    with pytest.raises(InputError, match="explanations"):
        factors_view(TOKENS, f, explanations=["a"])
    with pytest.raises(InputError, match="selected"):
        factors_view(TOKENS, f, selected=3)
    with pytest.raises(InputError, match="tuples"):
        factors_view(TOKENS, f, top_neurons=[[(1, 2)], [], []])


# ---------------------------------------------------------------- sparkline


@pytest.mark.parametrize("values", [[0.1, 0.5, 0.2, 0.9, 0.0], [1.0], [2.0, 2.0, 2.0], [0.2, float("nan"), -0.4, 0.3]])
def test_sparkline_has_one_point_per_value(values: list[float]) -> None:
    svg = sparkline_svg(values, width=120, height=24)
    assert svg.startswith("<svg") and 'width="120"' in svg and 'height="24"' in svg
    points = re.search(r'<polyline points="([^"]*)"', svg).group(1).split()
    assert len(points) == len(values)
    for p in points:
        x, y = map(float, p.split(","))
        assert 0 <= x <= 120 and 0 <= y <= 24
    assert "http" not in svg


def test_sparkline_peak_is_highest_and_errors() -> None:
    svg = sparkline_svg([0.0, 1.0, 0.5])
    ys = [float(p.split(",")[1]) for p in re.search(r'points="([^"]*)"', svg).group(1).split()]
    assert ys[1] < ys[2] < ys[0]  # SVG y grows downward
    with pytest.raises(InputError):
        sparkline_svg([[1, 2], [3, 4]])
    with pytest.raises(InputError):
        sparkline_svg([1, 2], width=0)


# ---------------------------------------------------------------- figures


def _ranks(n_layers: int, n_tokens: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 50_000, size=(n_layers, n_tokens))
    ranks[-1] = 1
    return ranks


@pytest.mark.parametrize(("n_layers", "n_tokens"), [(30, 20), (6, 5)])
def test_rankings_figure(n_layers: int, n_tokens: int) -> None:
    labels = [f" tok{i}" for i in range(n_tokens - 1)] + ["$x$"]
    fig = rankings_figure(_ranks(n_layers, n_tokens), [str(i) for i in range(n_layers)], labels, title="Ranks")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == "Ranks"
    assert [t.get_text() for t in ax.get_xticklabels()][:n_tokens] == [token_label(t) for t in labels]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in range(n_layers)]
    cell_texts = [t for t in ax.texts if t.get_text()]
    assert len(cell_texts) == n_layers * n_tokens
    assert cell_texts[-1].get_text() == "1" and not ax.get_xticklabels()[-1].get_parse_math()
    assert len(fig.axes) == 2  # heatmap + colour bar
    w, h = fig.get_size_inches()
    assert 3 <= w <= 24 and 2.5 <= h <= 22
    assert figure_to_png_bytes(fig, dpi=50).startswith(b"\x89PNG\r\n\x1a\n")


def test_rankings_watch_and_layer_predictions_figures() -> None:
    fig = rankings_watch_figure(_ranks(6, 2), [f"L{i}" for i in range(6)], [" is", " are"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [" is", " are"]
    assert fig.axes[0].get_xlabel() == "watched token"
    tokens = [[" London", " Paris", "\n"] for _ in range(6)]
    probs = np.tile([0.5, 0.2, 0.0005], (6, 1))
    fig = layer_predictions_figure(tokens, probs, [f"L{i}" for i in range(6)], title="Layer predictions")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert " London" in texts and "50%" in texts and "<0.1%" in texts and "↵" in texts
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"L{i}" for i in range(6)]
    assert figure_to_png_bytes(fig)[:4] == b"\x89PNG"


def test_similarity_figure_and_html_embedding() -> None:
    m = np.eye(4) * 0.5 + 0.5
    fig = similarity_figure(m, ["a", "b", "c", "d"], title="CKA")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c", "d"]
    assert "1.00" in [t.get_text() for t in fig.axes[0].texts]
    v = figure_to_html(fig)
    src = re.search(r'src="data:image/png;base64,([^"]+)"', v.html).group(1)
    assert base64.b64decode(src).startswith(b"\x89PNG") and 'alt="CKA"' in v.html
    assert "http" not in v.document()


def test_figure_errors() -> None:
    with pytest.raises(InputError, match="layer_labels"):
        rankings_figure(_ranks(6, 3), ["a"], ["x", "y", "z"])
    with pytest.raises(InputError, match="ranks starting at 1"):
        rankings_figure(np.zeros((2, 2)), ["a", "b"], ["x", "y"])
    with pytest.raises(InputError, match="pred_probs"):
        layer_predictions_figure([["a"]], [[0.5, 0.5]], ["L0"])
    with pytest.raises(InputError, match="0, 1"):
        similarity_figure(np.array([[2.0]]), ["a"])
    with pytest.raises(InputError, match="labels_b"):
        similarity_figure(np.ones((2, 3)) / 2, ["a", "b"])
    with pytest.raises(InputError):
        figure_to_png_bytes("not a figure")  # type: ignore[arg-type]
