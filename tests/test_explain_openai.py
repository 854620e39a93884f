"""OpenAI-compatible backend and embedder, with the real `openai` client against a loopback server."""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import time
import traceback

import numpy as np
import pytest
from servers.chroma_server import free_port
from servers.openai_compat import OpenAICompatServer, hashed_embedding

from ecco_sdk.errors import BackendError, ConfigurationError, InputError
from ecco_sdk.explain import OpenAIBackend, OpenAIEmbedder, explain_factors, get_backend, get_embedder
from ecco_sdk.explain.backends.openai import Secret

GOOD_KEY = "sk-ecco-GOODKEY-7f3a9c1e5b2d"
FAKE_KEY = "sk-ecco-FAKEKEY-0123456789abcdef"
USER = [{"role": "user", "content": "hello there\nsecond line"}]


@pytest.fixture()
def server():
    with OpenAICompatServer(api_key=GOOD_KEY) as srv:
        yield srv


def _chat_requests(srv: OpenAICompatServer) -> list[dict]:
    return [r for r in srv.requests if r["path"].endswith("/chat/completions")]


def test_complete_round_trip_sends_model_and_messages(server):
    backend = OpenAIBackend("test-model", base_url=server.base_url, api_key=GOOD_KEY)
    assert backend.complete(USER, max_tokens=20) == "hello there"
    body = _chat_requests(server)[-1]["body"]
    assert body["model"] == "test-model" and body["messages"] == USER and body["max_tokens"] == 20


def test_env_configuration_is_used(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", GOOD_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    backend = get_backend("openai:env-model")
    assert isinstance(backend, OpenAIBackend)
    assert backend.complete(USER) == "hello there"
    assert _chat_requests(server)[-1]["body"]["model"] == "env-model"


def test_missing_key_for_api_openai_com_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")


def test_logprobs_are_returned_when_the_server_has_them(server):
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=GOOD_KEY)
    done = backend.complete_logprobs([{"role": "user", "content": "a\t7"}], top_logprobs=3)
    assert done.text == "a\t7"
    assert [t.token for t in done.tokens] == ["a", "\t", "7"]
    seven = done.tokens[2]
    assert {alt for alt, _ in seven.top} == {"6", "7", "8"}
    assert np.isclose(sum(np.exp(lp) for _, lp in seven.top), 1.0)


def test_logprobs_absent_gives_none(server):
    server.logprobs = False
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=GOOD_KEY)
    assert backend.complete_logprobs([{"role": "user", "content": "a\t7"}]).tokens is None


def test_retries_429_and_500_with_exponential_backoff(server):
    server.fail(429, 1)
    server.fail(500, 1)
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=GOOD_KEY, max_retries=3, backoff=0.2)
    start = time.monotonic()
    assert backend.complete(USER) == "hello there"
    reqs = _chat_requests(server)
    assert len(reqs) == 3
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(reqs)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # 0.2 s, then 0.4 s: the delay doubles
    assert time.monotonic() - start >= 0.6


def test_gives_up_after_max_retries_with_a_backend_error(server):
    server.fail(500, 10)
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=GOOD_KEY, max_retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=r"3 attempts.*HTTP 500"):
        backend.complete(USER)
    assert len(_chat_requests(server)) == 3


def test_client_errors_are_not_retried(server):
    backend = OpenAIBackend("m", base_url=server.base_url.replace("/v1", "/nope"), api_key=GOOD_KEY, backoff=0.01)
    with pytest.raises(BackendError, match="404"):
        backend.complete(USER)
    assert len(server.requests) == 1


def test_unreachable_server_fails_fast_with_backend_error():
    port = free_port()  # nothing listens there
    backend = OpenAIBackend(
        "m", base_url=f"http://127.0.0.1:{port}/v1", api_key=GOOD_KEY, timeout=2, max_retries=1, backoff=0.01
    )
    start = time.monotonic()
    with pytest.raises(BackendError, match="connection failed") as info:
        backend.complete(USER)
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(info.value)


def test_a_stalled_server_times_out_with_backend_error(server):
    server.delay = 2.0
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=GOOD_KEY, timeout=0.3, max_retries=0)
    start = time.monotonic()
    with pytest.raises(BackendError, match="timed out"):
        backend.complete(USER)
    assert time.monotonic() - start < 1.9


def _leaks(text: str) -> bool:
    return FAKE_KEY in text or "FAKEKEY-0123456789" in text or "0123456789abcdef" in text


def test_wrong_key_is_a_backend_error_that_never_shows_the_key(server, caplog):
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=FAKE_KEY, backoff=0.01)
    with pytest.raises(BackendError, match="401") as info:
        backend.complete(USER)
    err = info.value
    # the server echoed the key in its 401 body; none of it may reach the user
    assert server.requests and "Incorrect API key" not in str(err)
    rendered = "".join(traceback.format_exception(err))
    for text in (str(err), repr(err), rendered, repr(err.args), repr(backend), str(vars(backend)), caplog.text):
        assert not _leaks(text)
    assert err.__cause__ is None and err.__context__ is None
    assert len(_chat_requests(server)) == 1  # 401 is not retried


def test_key_never_reaches_results_reprs_or_logs(server, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    server.api_key = FAKE_KEY  # this time the key is right, and must still not show up anywhere
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    tokens = ["I", " love", " apples", ",", " pears"]
    factors = np.array([[0, 0, 0, 1.0, 0]])
    explanations = explain_factors(tokens, factors, backend="openai:m", api_key=FAKE_KEY, n_examples=0)
    assert explanations[0].text
    dumped = json.dumps([e.to_dict() for e in explanations])
    for text in (dumped, repr(explanations), caplog.text):
        assert not _leaks(text)
    # without the explicit key the same spec has nothing to send: the key was not kept anywhere
    with pytest.raises(BackendError, match="401"):
        explain_factors(tokens, factors, backend=get_backend("openai:m"), n_examples=0)


def test_explicit_key_is_used_for_that_call_only(server):
    backend = OpenAIBackend("m", base_url=server.base_url, api_key=FAKE_KEY, backoff=0.01)
    one_off = get_backend(backend, api_key=GOOD_KEY)
    assert one_off is not backend
    assert one_off.complete(USER) == "hello there"
    with pytest.raises(BackendError, match="401"):
        backend.complete(USER)  # the original still has its own (wrong) key


def test_secret_hides_itself_and_refuses_pickling():
    secret = Secret(FAKE_KEY)
    assert FAKE_KEY not in repr(secret) and FAKE_KEY not in str(secret) and FAKE_KEY not in f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_api_key_for_a_local_backend_is_rejected():
    with pytest.raises(InputError, match="api_key"):
        get_backend("local", api_key="x")


def test_openai_embedder_returns_the_servers_unit_vectors(server):
    emb = OpenAIEmbedder("hash-emb", base_url=server.base_url, api_key=GOOD_KEY, batch_size=2)
    texts = ["commas, in, lists", "years like 1984", "", "code def return"]
    vectors = emb.embed(texts)
    assert vectors.shape == (4, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.stack([hashed_embedding(t if t.strip() else " ", 64) for t in texts])
    assert np.allclose(vectors, expected, atol=1e-6)
    assert len([r for r in server.requests if r["path"].endswith("/embeddings")]) == 2  # batches of 2
    assert emb.name == "openai:hash-emb"


def test_get_embedder_selects_openai_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("ECCO_SDK_EMBEDDING", "openai:hash-emb")
    monkeypatch.setenv("OPENAI_API_KEY", GOOD_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    emb = get_embedder()
    assert isinstance(emb, OpenAIEmbedder) and emb.name == "openai:hash-emb"
    assert emb.embed(["x"]).shape == (1, 64)
    with pytest.raises(InputError, match="unknown embedder"):
        get_embedder("word2vec")


def test_backend_names_never_carry_url_credentials():
    backend = OpenAIBackend("m", base_url="http://user:pa55word@127.0.0.1:8000/v1?token=abc", api_key="x")
    assert backend.name == "openai:m@http://127.0.0.1:8000/v1"
    assert "pa55word" not in repr(backend) and "token=abc" not in repr(backend)
