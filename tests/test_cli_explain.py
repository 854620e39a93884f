"""`ecco-sdk explain` in-process: the local default path on the embedded models, and an OpenAI-compatible server."""

from __future__ import annotations

import json
import re

import pytest
from servers.openai_compat import OpenAICompatServer

from ecco_sdk.cli import main
from ecco_sdk.explain import get_backend
from ecco_sdk.explain.prompt import DETECTION_SYSTEM, SIMULATION_SYSTEM, SYSTEM_PROMPT
from ecco_sdk.explain.store import forget_clients

TEXT = "We bought eggs, milk, and bread. Anna and Ben paid."
HELD_OUT = ["We saw cats, dogs, and owls at the zoo in Paris.", "It rained all day, so Tom stayed home."]
KEY = "sk-ecco-CLITEST-5e6f7a8b9c0d"
SMALL = "smollm2-135m-instruct"  # pinned: the default local explainer is the 1.5B when it is installed
SERVER_EXPLANATION = "names of groceries bought at a shop"


@pytest.fixture(scope="module")
def loaded(smollm):
    """The embedded LM and the local explainer, loaded before any test points the cache elsewhere."""
    _ = get_backend(f"local:{SMALL}").loaded
    return smollm


@pytest.fixture()
def isolated(loaded, tmp_path, monkeypatch):
    """A fresh cache directory (the Chroma store goes there) and no explainer settings from the environment."""
    monkeypatch.setenv("ECCO_SDK_CACHE", str(tmp_path / "cache"))
    for name in ("ECCO_SDK_EXPLAINER", "ECCO_SDK_EMBEDDING", "ECCO_SDK_OPENAI_MODEL", "CHROMA_HOST", "CHROMA_PORT"):
        monkeypatch.delenv(name, raising=False)
    forget_clients()
    yield tmp_path
    forget_clients()


def _run(capsys, *args: str) -> str:
    held = [a for t in HELD_OUT for a in ("--held-out", t)]
    code = main(["explain", TEXT, "--components", "2", "--layers", "25:30", "--quiet", *held, *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _blocks(out: str) -> list[str]:
    return [b for b in re.split(r"\n\s*\n", out.strip()) if b.startswith("factor ")]


@pytest.mark.slow
def test_explain_prints_one_scored_block_per_factor_with_the_local_model(isolated, capsys):
    out = _run(capsys, "--llm", SMALL)
    blocks = _blocks(out)
    assert [b.splitlines()[0] for b in blocks] == ["factor 0", "factor 1"]
    for block in blocks:
        active = re.search(r"active tokens: (.+)", block).group(1)
        assert re.search(r'"[^"]+":(10|[1-9])\b', active), active  # the factor's peak token reads as a 1-10 level
        explanation = re.search(r"explanation:\s+(.+)", block).group(1).strip()
        assert explanation and len(explanation) <= 201 and "\n" not in explanation
        assert re.search(r"scores: simulation -?\d\.\d{3}", block)
        assert "baseline random:" in block and "baseline top-tokens:" in block
    assert (isolated / "cache" / "chroma").is_dir()  # the default hybrid retriever used embedded Chroma


@pytest.mark.slow
def test_explain_json_output_parses_with_explanations_and_scores(isolated, capsys):
    data = json.loads(_run(capsys, "--json", "--llm", SMALL))
    assert [e["factor"] for e in data["explanations"]] == [0, 1]
    assert all(e["text"] and e["backend"] == "local:smollm2-135m-instruct" for e in data["explanations"])
    assert all(e["record"]["tokens"] for e in data["explanations"])
    n = len(data["nmf"]["tokens"])
    assert data["nmf"]["positions"] == list(range(1, n + 1))  # the first token (attention sink) is left out
    assert [f["factor"] for f in data["scores"]["factors"]] == [0, 1]
    assert data["scores"]["n_texts"] == len(HELD_OUT)
    assert set(data["scores"]["means"]) == {"simulation", "detection"}


def _server_reply(messages: list[dict[str, str]], body: dict) -> str:
    """Plays explainer, simulator and detector, depending on which system prompt it is sent."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    if system == SYSTEM_PROMPT:
        return SERVER_EXPLANATION + ".\nAnd some text that must be cut off."
    if system == SIMULATION_SYSTEM:
        tokens = messages[-1]["content"].split("Tokens:\n", 1)[1].rsplit("\n\nActivations:", 1)[0].split("\n")
        return "\n".join(f"{tok}\t{7 if tok.strip() in ('eggs', 'milk', 'bread') else 0}" for tok in tokens)
    if system == DETECTION_SYSTEM:
        return "Yes" if "milk" in messages[-1]["content"] else "No"
    return "unexpected prompt"


@pytest.mark.slow
def test_explain_with_an_openai_compatible_server(isolated, capsys, monkeypatch):
    with OpenAICompatServer(api_key=KEY, responder=_server_reply) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = _run(capsys, "--backend", "openai", "--llm", "cli-test-model", "--retriever", "bm25")
        chats = [r["body"] for r in server.requests if r["path"].endswith("/chat/completions")]
    blocks = _blocks(out)
    assert len(blocks) == 2
    for block in blocks:
        assert f"explanation:   {SERVER_EXPLANATION} (strongest: " in block
        assert "must be cut off" not in block
        assert re.search(r"scores: simulation", block)
    explainer_calls = [c for c in chats if c["messages"][0]["content"] == SYSTEM_PROMPT]
    assert len(explainer_calls) == 2 and {c["model"] for c in chats} == {"cli-test-model"}
    assert KEY not in out
