"""The README's Python examples run as written: the SDK quickstart, and the API calls against the real app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(heading: str) -> str:
    """The first ```python block under a '## heading' of the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


@pytest.mark.slow
def test_quickstart_runs_and_the_lens_guesses_london(smollm) -> None:
    import ecco_sdk

    code = _python_block("Quickstart").replace(
        'ecco_sdk.from_pretrained("smollm2-135m-instruct", activations=True)', "SMOLLM"
    )
    assert "SMOLLM" in code  # the model line is swapped for the session's copy, the rest runs as written
    scope: dict = {"SMOLLM": smollm}
    exec(compile(code, "README.md (Quickstart)", "exec"), scope)
    out, nmf = scope["out"], scope["nmf"]
    assert isinstance(out, ecco_sdk.OutputSeq) and out.n_generated == 6
    assert "ig" in out.attributions
    preds = out.layer_predictions(position=out.n_input_tokens, topk=5)
    assert preds.tokens[-1][0] == " London"  # the last layer's guess, as the comment says
    assert nmf.n_components == 4


@pytest.mark.slow
def test_api_examples_run_against_the_app(app_server) -> None:
    code = _python_block("The app and its API").replace("http://127.0.0.1:7860/", app_server[0])
    scope: dict = {}
    exec(compile(code, "README.md (API)", "exec"), scope)
    run, sal, lens, nmf, exp = (scope[k] for k in ("run", "sal", "lens", "nmf", "exp"))
    assert run["n_generated"] == 8 and run["output_text"].startswith(" Paris")
    assert {"token", "token_id", "prob"} <= set(run["candidates"][0][0])
    assert sal["method"] == "ig" and len(sal["scores_l2"]) == 8
    layers = scope["layers"]
    assert len(layers["scores_sum"]) == len(layers["layers"]) and len(layers["scores_sum"][0]) == len(layers["tokens"])
    assert lens["rankings_watch"]["watch_tokens"] == [" Paris", " London"]
    assert nmf["layers"] == [20, 30] and len(nmf["factors"]) == 4
    assert len(exp["explanations"]) == 2 and all(e["text"].strip() for e in exp["explanations"])
