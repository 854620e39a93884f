"""The Gradio app through the real gradio_client on loopback, and the serving layer's own pieces."""

from __future__ import annotations

import re
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ecco_sdk import InputError
from ecco_sdk.app import HUB_MODELS, RunCache, Server, ServingConfig, allowed_models, check_model, gpu
from ecco_sdk.app.inputs import as_int, watch_list
from ecco_sdk.checks import check_choice

MODEL = "smollm2-135m-instruct"

# ----- unit tests of ecco_sdk.app (no model, no server) ---------------------------------------------


class _Out:
    """Stands in for an OutputSeq in cache tests: the cache only stores and returns it."""


def test_run_cache_evicts_least_recently_used() -> None:
    cache = RunCache(capacity=2, ttl_s=60)
    a, b = cache.put(MODEL, "a", _Out()), cache.put(MODEL, "b", _Out())
    assert cache.get(a.run_id) is a  # a is now the most recently used
    c = cache.put(MODEL, "c", _Out())
    assert len(cache) == 2 and a.run_id in cache and c.run_id in cache and b.run_id not in cache
    with pytest.raises(InputError, match=r"unknown or expired .* last 2 runs .* generate again"):
        cache.get(b.run_id)


def test_run_cache_expires_by_age_and_rejects_missing_ids() -> None:
    now = [100.0]
    cache = RunCache(capacity=4, ttl_s=10, clock=lambda: now[0])
    run = cache.put(MODEL, "p", _Out())
    now[0] += 9
    assert cache.get(run.run_id) is run
    now[0] += 2
    with pytest.raises(InputError, match="unknown or expired"):
        cache.get(run.run_id)
    assert run.run_id not in cache
    with pytest.raises(InputError, match="generate text first"):
        cache.get("  ")
    assert len({cache.put(MODEL, "p", _Out()).run_id for _ in range(50)}) == 50  # random, never reused


def test_run_cache_is_thread_safe() -> None:
    cache = RunCache(capacity=8, ttl_s=60)

    def work(i: int) -> None:
        for _ in range(200):
            run = cache.put(MODEL, str(i), _Out())
            try:
                cache.get(run.run_id)
            except InputError:
                pass  # evicted by another thread meanwhile: allowed

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert len(cache) == 8


def test_config_from_env_and_validation() -> None:
    cfg = ServingConfig.from_env({"ECCO_APP_MAX_NEW_TOKENS": "5", "ECCO_APP_RUN_TTL_S": "2.5", "OTHER": "x"})
    assert cfg.max_new_tokens == 5 and cfg.run_ttl_s == 2.5 and cfg.max_components == ServingConfig().max_components
    with pytest.raises(InputError, match="ECCO_APP_MAX_COMPONENTS must be a number"):
        ServingConfig.from_env({"ECCO_APP_MAX_COMPONENTS": "many"})
    with pytest.raises(InputError, match="max_ig_steps must be a positive number"):
        ServingConfig(max_ig_steps=0)
    assert cfg.to_dict()["max_new_tokens"] == 5


def test_allow_list_depends_on_space_and_refuses_others() -> None:
    from ecco_sdk.models import EMBEDDED

    local = allowed_models({})
    # The installed embedded causal models only (the encoder cannot generate; a split model may be absent).
    assert local == [m.name for m in EMBEDDED.values() if m.kind == "causal" and m.installed()] and local[0] == MODEL
    on_space = allowed_models({"SPACE_ID": "someone/ecco"})
    assert on_space == [*local, *HUB_MODELS]
    assert check_model(" openai-community/gpt2 ", on_space) == "openai-community/gpt2"
    with pytest.raises(InputError, match=f"choose one of: {', '.join(local)}$"):
        check_model("openai-community/gpt2", local)
    with pytest.raises(InputError, match="not served"):
        check_model("evil/remote-code-model", on_space)
    with pytest.raises(InputError, match="not served"):
        Server(ServingConfig(), models=["openai-community/gpt2"])  # not on a Space here


def test_validators_state_the_limit() -> None:
    assert as_int(3.0, "n", 1, 5) == 3
    with pytest.raises(InputError, match=r"n must be an integer from 1 to 5 \(limit\), got 6"):
        as_int(6, "n", 1, 5, " (limit)")
    with pytest.raises(InputError, match="got True"):
        as_int(True, "n", 0, 5)
    with pytest.raises(InputError, match="style must be one of 'minimal', 'detailed'; got 'fancy'"):
        check_choice("fancy", "style", ("minimal", "detailed"))
    assert watch_list(" is, are,,  ", 5) == [" is", " are"]
    with pytest.raises(InputError, match="at most 1 watched tokens"):
        watch_list("a, b", 1)


def test_gpu_decorator_is_identity_without_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` raise ImportError

    def heavy(x: int) -> int:
        return x + 1

    assert gpu(heavy) is heavy


def test_gpu_decorator_uses_spaces_gpu_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real `spaces` package (Hugging Face ZeroGPU) is not installable offline, so a stand-in module
    # with the same entry point (`spaces.GPU(fn)` returning the wrapped function) takes its place here.
    seen = []

    def fake_gpu(fn):
        seen.append(fn)

        def on_gpu(*args, **kwargs):
            return ("gpu", fn(*args, **kwargs))

        return on_gpu

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))

    def heavy(x: int) -> int:
        return x * 2

    wrapped = gpu(heavy)
    assert seen == [heavy] and wrapped(4) == ("gpu", 8)


# ----- the app over HTTP ------------------------------------------------------------------------------------


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def client(app_server):
    return _client(app_server[0])


@pytest.fixture(scope="module")
def paris_run(client) -> dict:
    html, run = client.predict("The capital of France is", MODEL, 5, api_name="/generate")
    assert 'class="ecco-root' in html
    return run


@pytest.mark.slow
def test_generate_matches_the_sdk_and_returns_candidates(paris_run, smollm) -> None:
    direct = smollm.generate("The capital of France is", generate=5)
    assert paris_run["token_ids"] == direct.token_ids.tolist()
    assert paris_run["output_text"] == direct.output_text and paris_run["output_text"].startswith(" Paris")
    assert len(paris_run["candidates"]) == paris_run["n_generated"] == 5
    probs = [c["prob"] for c in paris_run["candidates"][0]]
    assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
    np.testing.assert_allclose(probs, direct.candidate_probs[0], rtol=1e-5)
    assert re.fullmatch(r"[0-9a-f]{16}", paris_run["run_id"])


@pytest.mark.slow
def test_saliency_reuses_the_run_and_highlights_inputs(client, paris_run, app_server) -> None:
    rid = paris_run["run_id"]
    html, data = client.predict(rid, "saliency", "detailed", 0, 4, api_name="/saliency")
    assert data["method"] == "saliency" and data["selected_target"] == 0
    assert data["target_positions"] == paris_run["generated_positions"]
    row = [v for v in data["scores_l2"][0] if v is not None]
    assert len(row) == paris_run["n_input_tokens"] and abs(sum(row) - 1) < 1e-4
    assert "background-color" in html and "ecco-target" in html
    stored = app_server[1].ecco_server.runs.get(rid).out.attributions["saliency"]
    _, again = client.predict(rid, "saliency", "minimal", -1, 4, api_name="/saliency")
    assert app_server[1].ecco_server.runs.get(rid).out.attributions["saliency"] is stored  # not recomputed
    assert again["scores_l2"] == data["scores_l2"] and again["selected_target"] == 4


@pytest.mark.slow
def test_saliency_integrated_gradients_with_few_steps(client) -> None:
    _, run = client.predict("Roses are red", MODEL, 2, api_name="/generate")
    _, data = client.predict(run["run_id"], "ig", "minimal", -1, 4, api_name="/saliency")
    assert data["method"] == "ig" and data["n_steps"] == 4 and len(data["delta"]) == 2


@pytest.mark.slow
def test_rankings_last_layer_ranks_greedy_tokens_first(client, paris_run) -> None:
    preds_html, ranks_html, watch_html, data = client.predict(
        paris_run["run_id"], " Paris, London", -1, 3, api_name="/rankings"
    )
    ranks = np.array(data["rankings"]["ranks"])
    assert ranks.shape == (30, 5) and (ranks[-1] == 1).all()  # greedy: the last layer's top token was chosen
    watch = data["rankings_watch"]
    assert watch["watch_tokens"] == [" Paris", " London"] and watch["ranks"][-1][0] == 1
    assert len(data["layer_predictions"]["tokens"]) == 30 and data["layer_predictions"]["tokens"][-1][0] == " Paris"
    assert all("data:image/png;base64," in h for h in (preds_html, ranks_html, watch_html))


@pytest.mark.slow
def test_nmf_factors_with_top_neurons(client, paris_run) -> None:
    html, plot_html, data = client.predict(paris_run["run_id"], 3, 20, -1, api_name="/nmf")
    assert data["layers"] == [20, 30] and data["n_components"] == 3
    factors = np.array(data["factors"])
    n = len(paris_run["tokens"])  # the first token (the attention sink) is left out by default
    assert factors.shape == (3, n - 1) and (factors >= 0).all() and data["positions"] == list(range(1, n))
    assert data["tokens"] == paris_run["tokens"][1:]
    assert all(len(t) == 8 and all(20 <= n[0] < 30 for n in t) for t in data["top_neurons"])
    assert "<svg" in html and "Factor 3" in html and "data:image/png" in plot_html


@pytest.mark.slow
def test_nmf_with_the_first_token_gives_it_a_factor_of_its_own(client, paris_run) -> None:
    _, _, data = client.predict(paris_run["run_id"], 3, 0, -1, False, api_name="/nmf")
    factors = np.array(data["factors"])
    assert factors.shape == (3, len(paris_run["tokens"])) and data["positions"] is None
    # the strongest factor is the first token's alone: why the app leaves it out by default
    assert factors[0].argmax() == 0 and factors[0, 1:].max() < 0.01 * factors[0, 0]


@pytest.mark.slow
def test_explain_openai_compatible_backend_uses_the_key_for_this_request_only(client, paris_run, app_server) -> None:
    from servers.openai_compat import OpenAICompatServer

    key = "sk-user-own-key-123"
    with OpenAICompatServer(api_key=key, responder=lambda m, b: "the word Paris") as srv:
        args = (paris_run["run_id"], 2, 20, -1, "openai", srv.base_url, "test-model")
        html, scores, data = client.predict(*args, key, False, 0, "bm25", "", api_name="/explain")
        texts = [e["text"] for e in data["explanations"]]
        assert len(texts) == 2 and all(t.startswith('the word Paris (strongest: "') for t in texts)
        assert len(srv.requests) == 2 and "the word Paris" in html and "Not scored" in scores
        assert key not in str(data) and app_server[1].run_history is False  # the browser keeps no inputs
        with pytest.raises(Exception) as err:  # the app's secret is unset, so no key means an error
            client.predict(*args, "sk-wrong", False, 0, "bm25", "", api_name="/explain")
    assert "sk-wrong" not in str(err.value) and re.search("401|key", str(err.value))


@pytest.mark.slow
def test_explain_local_backend(client, paris_run) -> None:
    _, _, data = client.predict(
        paris_run["run_id"], 1, 25, -1, "local", "", MODEL, "", False, 0, "bm25", "", api_name="/explain"
    )
    (exp,) = data["explanations"]
    assert exp["backend"].startswith("local") and exp["text"].strip()
    assert data["nmf"]["layers"] == [25, 30] and data["scores"] is None
    assert data["nmf"]["positions"] == list(range(1, len(paris_run["tokens"])))  # the attention sink left out


PROMPTS = ["The keys to the cabinet", "One, two, three,", "Heathrow airport is in", "My favourite colour is"]


@pytest.mark.slow
def test_four_concurrent_clients_match_four_sequential_calls(app_server) -> None:
    url = app_server[0]
    seq_client = _client(url)
    sequential = [seq_client.predict(p, MODEL, 4, api_name="/generate")[1] for p in PROMPTS]
    clients = [_client(url) for _ in PROMPTS]
    barrier = threading.Barrier(len(PROMPTS))

    def call(i: int):
        barrier.wait()
        start = time.perf_counter()
        data = clients[i].predict(PROMPTS[i], MODEL, 4, api_name="/generate")[1]
        return data, start, time.perf_counter()

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        parallel = list(pool.map(call, range(len(PROMPTS))))
    spans = [(s, e) for _, s, e in parallel]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # the four calls really overlapped
    for seq, (par, _, _) in zip(sequential, parallel):
        assert par["token_ids"] == seq["token_ids"] and par["tokens"] == seq["tokens"]
        for a, b in zip(par["candidates"], seq["candidates"]):
            assert [c["token_id"] for c in a] == [c["token_id"] for c in b]
            np.testing.assert_allclose([c["prob"] for c in a], [c["prob"] for c in b], rtol=1e-4)
        assert par["run_id"] != seq["run_id"]
    # Each concurrent run kept its own activations: the factors are over its own tokens.
    for par, _, _ in parallel:
        _, _, nmf = seq_client.predict(par["run_id"], 2, 28, -1, False, api_name="/nmf")
        assert nmf["tokens"] == par["tokens"]


BAD_REQUESTS = [
    ("/generate", ("", MODEL, 4), "prompt is empty"),
    ("/generate", ("Hello", MODEL, 500), "max_new_tokens must be an integer from 1 to 12"),
    ("/generate", ("word " * 80, MODEL, 4), "at most 64 input tokens"),
    ("/generate", ("Hello", "gpt-5-turbo", 4), f"choose one of: {MODEL}"),
    ("/saliency", ("0123456789abcdef", "ig", "minimal", -1, 4), "unknown or expired"),
    ("/saliency", ("", "ig", "minimal", -1, 4), "generate text first"),
    ("/nmf", ("RUN", 3, 0, 99), r"to_layer=99 is out of range; valid values are 1\.\.30"),
    ("/nmf", ("RUN", 3, 40, -1), r"from_layer=40 is out of range"),
    ("/nmf", ("RUN", 99, 0, -1), "n_components must be an integer from 1 to 8"),
    ("/saliency", ("RUN", "ig", "minimal", -1, 1000), "n_steps must be an integer from 1 to 64"),
    ("/rankings", ("RUN", " zzqxjv", -1, 3), "give a single token"),
]


@pytest.mark.slow
def test_bad_requests_come_back_as_clear_errors_and_the_app_keeps_serving(client, paris_run) -> None:
    from gradio_client.exceptions import AppError

    for api, args, message in BAD_REQUESTS:
        args = tuple(paris_run["run_id"] if a == "RUN" else a for a in args)
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=api)
        assert re.search(message, str(err.value)), (api, args, str(err.value))
    html, run = client.predict("The capital of France is", MODEL, 2, api_name="/generate")
    assert run["token_ids"] == paris_run["token_ids"][: len(run["token_ids"])] and html
