"""Example store (real Chroma: embedded and `chroma run` server) and retrievers (dense+MMR, BM25, hybrid)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from servers.chroma_server import chroma_server, free_port
from servers.openai_compat import OpenAICompatServer
from servers.stalling import FreezableProxy, SilentServer

from ecco_sdk.errors import BackendError, ConfigurationError, InputError
from ecco_sdk.explain import (
    ActivationRecord,
    BM25Retriever,
    DenseRetriever,
    ExampleStore,
    HybridRetriever,
    Library,
    OpenAIEmbedder,
    load_library,
    make_retriever,
    mmr,
    open_store,
)
from ecco_sdk.explain.library import Example
from ecco_sdk.explain.store import chroma_client, chroma_location, chroma_timeouts, forget_clients

FIXTURE = Path(__file__).parent / "explain_fixtures" / "examples.json"
KEY = "sk-store-test"
COMMA_QUERY = ActivationRecord(
    ["We", " bought", " apples", ",", " pears", ",", " and", " figs", "."], [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0]
)


@pytest.fixture(scope="module")
def api():
    with OpenAICompatServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture()
def hash_embedder(api):
    return OpenAIEmbedder("hash-emb", base_url=api.base_url, api_key=KEY)


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ECCO_SDK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHROMA_HOST", raising=False)
    monkeypatch.delenv("CHROMA_PORT", raising=False)
    forget_clients()
    yield tmp_path / "cache"
    forget_clients()


@pytest.fixture(scope="module")
def library():
    return load_library(FIXTURE)


def _embedding_calls(srv: OpenAICompatServer) -> int:
    return sum(1 for r in srv.requests if r["path"].endswith("/embeddings"))


def test_embedded_store_lives_under_the_cache_and_loading_is_idempotent(tmp_cache, library, hash_embedder, api):
    store = open_store(library, hash_embedder, collection="idem")
    assert Path(store.location) == (tmp_cache / "chroma").resolve()
    assert (tmp_cache / "chroma").is_dir()
    assert store.count() == len(library)
    calls = _embedding_calls(api)
    again = store.sync(library)
    assert again.to_dict() == {"added": 0, "updated": 0, "unchanged": len(library), "removed": 0}
    assert _embedding_calls(api) == calls  # nothing re-embedded
    forget_clients()  # as if a new process opened the same folder
    reopened = open_store(library, hash_embedder, collection="idem")
    assert reopened.count() == len(library)
    assert reopened.collection.metadata["embedding_model"] == "openai:hash-emb"
    assert reopened.collection.metadata["embedding_dim"] == 64


def test_an_edited_example_is_updated_and_a_removed_one_pruned(tmp_cache, library, hash_embedder):
    store = open_store(library, hash_embedder, collection="edits")
    edited = dataclasses.replace(library.examples[0], explanation="commas between fruit names")
    changed = Library([edited, *library.examples[1:-1]])
    stats = store.sync(changed)
    assert (stats.added, stats.updated, stats.removed) == (0, 1, 1)
    assert store.count() == len(library) - 1
    got = store.collection.get(ids=[edited.id], include=["metadatas"])
    assert got["metadatas"][0]["explanation"] == "commas between fruit names"
    assert got["metadatas"][0]["content_hash"].endswith(edited.content_hash())


def test_opening_with_another_embedding_model_is_a_configuration_error(tmp_cache, library, hash_embedder, api):
    open_store(library, hash_embedder, collection="mismatch")
    other = OpenAIEmbedder("other-emb", base_url=api.base_url, api_key=KEY)
    with pytest.raises(ConfigurationError) as info:
        ExampleStore.open(other, collection="mismatch")
    msg = str(info.value)
    assert "openai:hash-emb" in msg and "openai:other-emb" in msg and "collection" in msg


def test_a_collection_not_made_by_ecco_sdk_is_refused(tmp_cache, hash_embedder):
    client = chromadb.PersistentClient(path=str(tmp_cache / "chroma"), settings=Settings(anonymized_telemetry=False))
    client.create_collection("foreign", embedding_function=None)
    with pytest.raises(ConfigurationError, match="not made by ecco_sdk"):
        ExampleStore.open(hash_embedder, client=client, collection="foreign")


def test_invalid_collection_names_are_rejected_up_front(tmp_cache, hash_embedder):
    for bad in ("ab", "-bad-start", "has space", "x" * 600):
        with pytest.raises(InputError, match="collection name"):
            ExampleStore.open(hash_embedder, collection=bad)


@pytest.mark.slow
def test_http_client_path_against_a_real_chroma_server(tmp_path, monkeypatch, library, hash_embedder, api):
    with chroma_server(tmp_path / "server-data") as (host, port):
        monkeypatch.setenv("CHROMA_HOST", host)
        monkeypatch.setenv("CHROMA_PORT", str(port))
        forget_clients()
        try:
            assert chroma_location() == f"http://{host}:{port}"
            store = open_store(library, hash_embedder, collection="served")
            assert store.location.startswith("http://")
            assert store.sync(library).unchanged == len(library)
            # a separate client sees exactly one copy of each example plus the embedding-model record
            plain = chromadb.HttpClient(host=host, port=port, settings=Settings(anonymized_telemetry=False))
            col = plain.get_collection("served", embedding_function=None)
            assert col.count() == len(library)
            assert col.metadata["embedding_model"] == "openai:hash-emb"
            ranked = DenseRetriever(store, library, mmr_lambda=1.0).rank(COMMA_QUERY, 3)
            assert len(ranked) == 3 and set(ranked) <= set(library.ids)
        finally:
            forget_clients()
    assert not (tmp_path / "cache").exists()  # nothing went to an embedded store


def test_unreachable_chroma_server_is_a_configuration_error(monkeypatch, hash_embedder):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
    forget_clients()
    with pytest.raises(ConfigurationError, match="cannot reach the Chroma server"):
        ExampleStore.open(hash_embedder, collection="nowhere")
    forget_clients()


def test_mmr_prefers_a_different_candidate_over_a_near_duplicate():
    q = np.array([1.0, 0.0, 0.0])
    cands = np.array([[0.95, 0.31, 0.0], [0.9, 0.43, 0.07], [0.8, 0.0, 0.6]])
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    assert mmr(q, cands, 2, lam=1.0) == [0, 1]
    assert mmr(q, cands, 2, lam=0.5) == [0, 2]
    with pytest.raises(InputError):
        mmr(q, cands, 2, lam=1.5)


def _ex(ex_id, category, tokens, acts, explanation):
    return Example(ex_id, category, tuple(tokens), tuple(acts), explanation)


DUPLICATES = Library(
    [
        _ex("dup-a", "punctuation", ["I", " love", " apples", ",", " pears", ",", " and", " plums", "."],
            [0, 0, 0, 10, 0, 9, 1, 0, 0], "commas separating items in a list"),
        _ex("dup-b", "punctuation", ["I", " love", " apples", ",", " pears", ",", " and", " plums", "!"],
            [0, 0, 0, 10, 0, 9, 1, 0, 0], "commas in a list of fruit"),
        _ex("dup-c", "punctuation", ["I", " like", " apples", ",", " pears", ",", " and", " plums", "."],
            [0, 0, 0, 10, 0, 9, 1, 0, 0], "commas between list items"),
        _ex("other-commas", "punctuation", ["Red", ",", " green", ",", " blue", " and", " yellow", " paint"],
            [0, 10, 0, 9, 0, 1, 0, 0], "commas separating colour names"),
        _ex("years", "numbers", ["She", " was", " born", " in", " 1984", "."], [0, 0, 0, 1, 10, 0],
            "years written as numbers"),
        _ex("code", "code", ["def", " add", "(", "a", ",", " b", "):"], [10, 2, 0, 0, 0, 0, 0], "Python keywords"),
    ]
)  # fmt: skip


@pytest.mark.slow
def test_dense_retrieval_with_minilm_mmr_avoids_near_duplicates(tmp_cache):
    """Real MiniLM embeddings: plain nearest neighbours are three copies of one example, MMR is not."""
    store = open_store(DUPLICATES, "minilm", collection="mmr-dups")
    assert store.embedder.name == "sentence-transformers:sentence-transformers/all-MiniLM-L6-v2"
    plain = DenseRetriever(store, DUPLICATES, mmr_lambda=1.0).rank(COMMA_QUERY, 3)
    diverse = DenseRetriever(store, DUPLICATES, mmr_lambda=0.5).rank(COMMA_QUERY, 3)
    dups = {"dup-a", "dup-b", "dup-c"}
    assert set(plain) == dups
    assert diverse[0] in dups
    assert len(dups & set(diverse)) == 1


def test_bm25_needs_no_embeddings_and_matches_active_tokens(library):
    bm25 = make_retriever("bm25", library)
    assert isinstance(bm25, BM25Retriever)
    assert bm25.rank(COMMA_QUERY, 3)[0] == "punct-commas-01"
    years = ActivationRecord(["It", " ended", " in", " 19", "45", "."], [0, 0, 0, 1.0, 0.8, 0])
    assert bm25.rank(years, 1) == ["numbers-years-01"]


def test_bm25_matches_token_shapes_not_only_identical_tokens(library):
    """No fixture example contains "2077", but its shape (a 4-digit number) finds the year example."""
    bm25 = BM25Retriever(library)
    future = ActivationRecord(["Set", " in", " the", " year", " 2077", " on", " Mars"], [0, 0, 0, 0, 1.0, 0, 0])
    assert bm25.rank(future, 1) == ["numbers-years-01"]


def test_retrievers_are_selectable_by_name(tmp_cache, library, hash_embedder):
    dense = make_retriever("dense", library, embedder=hash_embedder)
    hybrid = make_retriever("hybrid", library, embedder=hash_embedder)
    assert isinstance(dense, DenseRetriever) and dense.name == "dense"
    assert isinstance(hybrid, HybridRetriever) and hybrid.name == "hybrid"
    fused = hybrid.rank(COMMA_QUERY, len(library))
    assert fused[0] == "punct-commas-01"
    assert sorted(fused) == sorted(library.ids)  # every example ranked once, no duplicates from fusion
    with pytest.raises(InputError, match="unknown retriever"):
        make_retriever("graph", library)


def test_hybrid_rank_is_reciprocal_rank_fusion():
    class Fixed:
        def __init__(self, name, order):
            self.name, self.order = name, order

        def rank(self, record, k):
            return self.order[:k]

    fused = HybridRetriever(Fixed("a", ["x", "y", "z"]), Fixed("b", ["z", "y", "w"]), k0=1).rank(COMMA_QUERY, 4)
    # scores: y = 1/3 + 1/3, x = 1/2, z = 1/4 + 1/2, w = 1/4
    assert fused == ["z", "y", "x", "w"]


# ----- timeouts and locking against a silent or stalling server (issue 12) ----------------------
@pytest.fixture()
def silent(monkeypatch):
    srv = SilentServer()
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(srv.port))
    monkeypatch.setenv("ECCO_SDK_CHROMA_TIMEOUT", "1.5")
    forget_clients()
    yield srv
    forget_clients()
    srv.close()


def _timed(fn) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        fn()
    except Exception as err:  # returned to the test to assert on
        return err, time.monotonic() - start
    return None, time.monotonic() - start


def test_timeouts_come_from_the_environment_and_bad_values_are_refused(monkeypatch):
    monkeypatch.delenv("ECCO_SDK_CHROMA_TIMEOUT", raising=False)
    monkeypatch.delenv("ECCO_SDK_CHROMA_CONNECT_TIMEOUT", raising=False)
    assert chroma_timeouts() == (5.0, 30.0)
    monkeypatch.setenv("ECCO_SDK_CHROMA_TIMEOUT", "2.5")
    monkeypatch.setenv("ECCO_SDK_CHROMA_CONNECT_TIMEOUT", "0.5")
    assert chroma_timeouts() == (0.5, 2.5)
    for bad in ("soon", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("ECCO_SDK_CHROMA_TIMEOUT", bad)
        with pytest.raises(ConfigurationError, match="ECCO_SDK_CHROMA_TIMEOUT must be a positive number of seconds"):
            chroma_timeouts()


@pytest.mark.timeout(60)
def test_a_dense_retriever_on_a_silent_server_fails_within_the_timeout(silent, library, hash_embedder):
    err, seconds = _timed(lambda: make_retriever("dense", library, embedder=hash_embedder))
    assert isinstance(err, ConfigurationError), err
    where = f"Chroma server at http://127.0.0.1:{silent.port}"
    assert f"{where} did not answer a heartbeat within 1.5 s (ECCO_SDK_CHROMA_TIMEOUT)" in str(err)
    assert 1.4 < seconds < 4.0, seconds
    assert silent.conns, "the client really connected to the silent server"


@pytest.mark.timeout(60)
def test_a_silent_server_blocks_no_other_caller(silent, tmp_path):
    """While one caller waits on the silent server, an embedded store opens at once and a second caller to the
    same server is not queued behind the first: it fails after its own timeout, not after both."""
    results: dict[str, tuple[BaseException | None, float]] = {}

    def call(tag: str) -> None:
        results[tag] = _timed(chroma_client)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    time.sleep(0.3)
    second = threading.Thread(target=call, args=("second",))
    second.start()
    start = time.monotonic()
    embedded = chroma_client(tmp_path / "embedded")  # another location: must not wait for the silent server
    embedded_seconds = time.monotonic() - start
    assert embedded.heartbeat() > 0
    assert first.is_alive(), "the first caller should still be waiting on the silent server"
    assert embedded_seconds < 1.2, embedded_seconds
    first.join(10)
    second.join(10)
    for tag in ("first", "second"):
        err, seconds = results[tag]
        assert isinstance(err, ConfigurationError) and "did not answer a heartbeat within 1.5 s" in str(err), (tag, err)
        assert 1.4 < seconds < 3.0, (tag, seconds)  # 2 x 1.5 s or more would mean the callers were serialized


@pytest.mark.timeout(180)
def test_a_server_that_stalls_after_connecting_gives_a_backend_error_within_the_timeout(
    tmp_path, monkeypatch, library, hash_embedder
):
    """A real `chroma run` server behind a proxy that stops forwarding once the store is open."""
    with chroma_server(tmp_path / "server-data") as (host, port):
        proxy = FreezableProxy(port)
        try:
            monkeypatch.setenv("CHROMA_HOST", host)
            monkeypatch.setenv("CHROMA_PORT", str(proxy.port))
            monkeypatch.setenv("ECCO_SDK_CHROMA_TIMEOUT", "3")
            forget_clients()
            got: list = []
            racers = [threading.Thread(target=lambda: got.append(chroma_client())) for _ in range(4)]
            for t in racers:
                t.start()
            for t in racers:
                t.join(30)
            assert len(got) == 4 and all(c is got[0] for c in got)  # racing callers share one cached client
            assert got[0].heartbeat() > 0
            store = open_store(library, hash_embedder, collection="stall-test")
            assert store.count() == len(library)
            proxy.frozen.set()
            err, seconds = _timed(store.count)
            assert isinstance(err, BackendError), err
            assert "did not count the stored examples within 3 s (ECCO_SDK_CHROMA_TIMEOUT)" in str(err)
            assert 2.9 < seconds < 6.0, seconds
            vector = store.embed_query(next(iter(library)).record)  # the embedder is not behind the proxy
            err, seconds = _timed(lambda: store.query(vector, 3))
            assert isinstance(err, BackendError) and seconds < 6.0, (err, seconds)
        finally:
            forget_clients()
            proxy.close()
