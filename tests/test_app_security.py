"""The app's secret policy, request bounds and input errors, through the real gradio_client on loopback.

Each defect of issue 12 that is the app's has a test here: the operator's key never leaves for a caller's
URL (defect 1), caller URLs are refused by policy and upstream bodies never come back (2), cancelled work
stops and the queue is bounded (3), requests have a time cap (4), bad inputs get messages by name (8),
bounded and escaped (9), one client cannot flush everyone's runs (10), and wording fixes (11).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ecco_sdk import BackendError, ConfigurationError, InputError
from ecco_sdk.app import (
    ATTRIBUTION_METHODS,
    BusyError,
    Jobs,
    RunCache,
    ServingConfig,
    caller_url_mode,
    check_caller_url,
    get_lm,
    load_app,
    openai_target,
    release_memory,
)
from ecco_sdk.errors import TimeLimitError

MODEL = "smollm2-135m-instruct"
OWNER_KEY = "sk-OWNER-999-secret-operator-key"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched(**config) -> Iterator[tuple[str, object]]:
    """space/app.py built with this ServingConfig and launched on a free loopback port: (url, demo)."""
    module = load_app()
    demo = module.build_app([MODEL], config=ServingConfig(max_new_tokens=12, explain_max_tokens=8, **config))
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def _error(client, *args, api_name: str) -> str:
    """The message of the AppError a call raises (the call must fail)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name)
    return str(err.value)


@pytest.fixture(scope="module")
def operator_env() -> Iterator[None]:
    """The operator's key set on the server, as on a Space with OPENAI_API_KEY in its secrets."""
    old = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    os.environ["OPENAI_API_KEY"] = OWNER_KEY
    os.environ.pop("OPENAI_BASE_URL", None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def app(operator_env) -> Iterator[tuple[str, object]]:
    with launched(concurrency_limit=2) as pair:
        yield pair


@pytest.fixture(scope="module")
def client(app):
    return _client(app[0])


@pytest.fixture(scope="module")
def run(client) -> dict:
    return client.predict("The capital of France is", MODEL, 3, api_name="/generate")[1]


def _explain_args(rid: str, base_url: str, api_key: str, llm_model: str = "m") -> tuple:
    return (rid, 1, 28, -1, "openai", base_url, llm_model, api_key, False, 0, "bm25", "")


# ----- defect 1: the operator's key -------------------------------------------------------------------------


def test_operator_key_never_goes_to_a_caller_url(client, run) -> None:
    from servers.recorder import RecordingServer

    with RecordingServer(status=401, body=b'{"error": {"message": "nope"}}') as rec:
        msg = _error(client, *_explain_args(run["run_id"], rec.base_url, ""), api_name="/explain")
        assert rec.authorizations() == ["Bearer no-key"]  # a placeholder, not the operator's key
        _error(client, *_explain_args(run["run_id"], rec.base_url, "sk-callers-own"), api_name="/explain")
        assert rec.authorizations()[1] == "Bearer sk-callers-own"
    assert "401" in msg and OWNER_KEY not in msg and all(OWNER_KEY not in a for a in rec.authorizations())


def test_operator_key_goes_to_the_operators_endpoint(operator_env, run) -> None:
    from servers.openai_compat import OpenAICompatServer

    answer = "the capital"
    with (
        OpenAICompatServer(api_key=OWNER_KEY, responder=lambda m, b: answer) as srv,
        launched(openai_base_url=srv.base_url, caller_base_url="off") as (url, _),
    ):
        c = _client(url)
        rid = c.predict("The capital of France is", MODEL, 3, api_name="/generate")[1]["run_id"]
        _, _, data = c.predict(*_explain_args(rid, "", ""), api_name="/explain")
        (text,) = [e["text"] for e in data["explanations"]]  # the answer, then the cited strongest tokens
        assert text.startswith(f"{answer} (strongest: ") and len(srv.requests) == 1
        assert OWNER_KEY not in json.dumps(data)
        msg = _error(c, *_explain_args(rid, srv.base_url, ""), api_name="/explain")
        assert "does not send requests to a base_url chosen by the caller" in msg and len(srv.requests) == 1


def test_no_key_anywhere_tells_the_caller_to_type_one(monkeypatch, run) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="type your own in api_key") as err:
        openai_target(ServingConfig(), "", "")
    assert "OPENAI_API_KEY" not in str(err.value)  # remote users cannot set the server's environment


# ----- defect 2: caller URLs, credentials, private addresses, upstream bodies -------------------------------


def test_caller_url_policy_modes() -> None:
    space, local = {"SPACE_ID": "me/app"}, {}
    assert caller_url_mode(ServingConfig(), space) == "off"
    assert caller_url_mode(ServingConfig(), local) == "any"
    assert caller_url_mode(ServingConfig(caller_base_url="public"), space) == "public"
    public = ServingConfig(caller_base_url="public")
    for url in ("http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://10.1.2.3/v1", "http://169.254.169.254/",
                "http://[::1]:9/v1", "http://[::ffff:127.0.0.1]/v1", "http://0.0.0.0:9/v1"):  # fmt: skip
        with pytest.raises(InputError, match="private, loopback or link-local"):
            check_caller_url(url, public, local)
    with pytest.raises(InputError, match="does not send requests"):
        check_caller_url("https://api.example.com/v1", ServingConfig(), space)
    listed = ServingConfig(caller_base_url="off", allowed_base_urls="http://127.0.0.1:9/v1, https://x.test")
    assert check_caller_url("http://127.0.0.1:9/v1", listed, space) == "http://127.0.0.1:9/v1"
    with pytest.raises(InputError, match="does not send"):
        check_caller_url("http://127.0.0.1:9/v1evil", listed, space)
    for bad in ("ftp://x/v1", "file:///etc/passwd", "127.0.0.1:9"):
        with pytest.raises(InputError, match="http:// or https://"):
            check_caller_url(bad, ServingConfig(), local)
    with pytest.raises(InputError, match="caller_base_url must be one of"):
        ServingConfig(caller_base_url="sometimes")


def test_caller_url_refused_on_a_public_policy_without_any_connection(client, run) -> None:
    from servers.recorder import RecordingServer

    with RecordingServer() as rec, launched(caller_base_url="public") as (url, _):
        c = _client(url)
        rid = c.predict("The capital of France is", MODEL, 2, api_name="/generate")[1]["run_id"]
        start = time.perf_counter()
        for target in (rec.base_url, f"http://localhost:{rec.port}/v1", "http://169.254.169.254/latest/v1"):
            msg = _error(c, *_explain_args(rid, target, "sk-mine"), api_name="/explain")
            assert "private, loopback or link-local" in msg, msg
        assert time.perf_counter() - start < 10 and rec.requests == []


def test_url_with_credentials_is_refused_and_not_echoed(client, run) -> None:
    from servers.recorder import RecordingServer

    with RecordingServer() as rec:
        url = f"http://alice:hunter2pass@127.0.0.1:{rec.port}/v1"
        msg = _error(client, *_explain_args(run["run_id"], url, ""), api_name="/explain")
    assert "user name or password" in msg and "hunter2pass" not in msg and rec.requests == []


def test_upstream_error_bodies_never_reach_the_caller(client, run) -> None:
    from servers.recorder import RecordingServer

    marker = "UPSTREAM-BODY-MARKER"
    cases = [
        (400, json.dumps({"error": {"message": marker * 20}}).encode(), "application/json", "HTTP 400"),
        (404, f"<html>{marker}</html>".encode(), "text/html", "answered 404"),
        (200, f"not json {marker}".encode(), "application/json", "not JSON"),
        (200, f"<html>{marker}</html>".encode(), "text/html", "no choices|cannot read|not JSON"),
    ]
    for status, body, ctype, expect in cases:
        with RecordingServer(status=status, body=body, headers={"Content-Type": ctype}) as rec:
            msg = _error(client, *_explain_args(run["run_id"], rec.base_url, "k"), api_name="/explain")
        assert re.search(expect, msg) and marker not in msg and len(msg) < 400, (status, ctype, msg)


def test_redirects_are_not_followed(client, run) -> None:
    from servers.recorder import RecordingServer

    with RecordingServer() as inner:
        to = f"http://127.0.0.1:{inner.port}/v1/chat/completions"
        with RecordingServer(status=307, body=b"", headers={"Location": to}) as outer:
            _error(client, *_explain_args(run["run_id"], outer.base_url, "sk-mine"), api_name="/explain")
            assert len(outer.requests) == 1
        assert inner.requests == []


def test_non_json_reply_is_a_backend_error_in_the_sdk() -> None:
    from servers.recorder import RecordingServer

    from ecco_sdk.explain import OpenAIBackend

    with RecordingServer(status=200, body=b"{not json") as rec:
        backend = OpenAIBackend("m", base_url=rec.base_url, api_key="k", max_retries=0)
        with pytest.raises(BackendError, match="not JSON"):
            backend.complete([{"role": "user", "content": "hi"}])


# ----- defects 3 and 4: cancellation, bounded queue, time cap -----------------------------------------------


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_cancelled_ig_job_stops_frees_its_worker_and_caches_nothing() -> None:
    with launched(max_ig_steps=256) as (url, demo):
        c = _client(url)
        run = c.predict("The capital of France is a city called", MODEL, 6, api_name="/generate")[1]
        server = demo.ecco_server
        start = time.monotonic()
        job = c.submit(run["run_id"], "ig", "minimal", -1, 256, api_name="/saliency")
        assert _wait(lambda: server.jobs.counts("saliency")[0] == 1, 30)
        time.sleep(1.0)
        job.cancel()
        cancelled = time.monotonic()
        assert _wait(lambda: server.jobs.counts("saliency") == (0, 0), 60), "the IG work kept running"
        stopped = time.monotonic() - cancelled
        assert "ig" not in server.runs.get(run["run_id"]).out.attributions  # nothing half-done was kept
        # The same job run to the end takes much longer than it took to stop after the cancel.
        _, data = c.predict(run["run_id"], "ig", "minimal", -1, 32, api_name="/saliency")
        full_32 = time.monotonic() - cancelled - stopped
        print(
            f"IG 256 steps cancelled after {cancelled - start:.1f} s: stopped {stopped:.1f} s later; "
            f"32 steps: {full_32:.1f} s"
        )
        assert data["n_steps"] == 32 and stopped < max(5.0, full_32 / 2), (stopped, full_32, cancelled - start)


def test_queue_is_bounded_per_endpoint_and_per_session() -> None:
    from servers.stalling import SilentServer

    hang = SilentServer()
    with contextlib.closing(hang), launched(concurrency_limit=1, max_queue=1, upstream_timeout_s=5) as (url, demo):
        clients = [_client(url) for _ in range(3)]
        rid = clients[0].predict("Hello there", MODEL, 2, api_name="/generate")[1]["run_id"]
        args = _explain_args(rid, f"http://127.0.0.1:{hang.port}/v1", "k")
        jobs = [clients[i].submit(*args, api_name="/explain") for i in range(2)]
        assert _wait(lambda: demo.ecco_server.jobs.counts("explain") == (1, 2), 30)
        msg = _error(clients[2], *args, api_name="/explain")
        assert "busy" in msg and "try again" in msg
        second = clients[0].submit(*args, api_name="/explain")  # the same session as jobs[0]: 2 in flight
        third = _error(clients[0], *args, api_name="/explain")
        assert "you already have 2 requests" in third or "busy" in third
        for j in (*jobs, second):
            j.cancel()
        assert _wait(lambda: demo.ecco_server.jobs.counts("explain") == (0, 0), 60)


def test_time_cap_stops_the_work_and_names_the_limit() -> None:
    from servers.stalling import SilentServer

    with launched(max_request_s=2, max_ig_steps=512) as (url, demo):
        c = _client(url)
        run = c.predict("The capital of France is a city called", MODEL, 6, api_name="/generate")[1]
        start = time.perf_counter()
        msg = _error(c, run["run_id"], "ig", "minimal", -1, 512, api_name="/saliency")
        took = time.perf_counter() - start
        assert "time limit of 2 s" in msg and "ECCO_APP_MAX_REQUEST_S" in msg and "IG steps" in msg
        assert took < 30 and "ig" not in demo.ecco_server.runs.get(run["run_id"]).out.attributions
        hang = SilentServer()  # a hanging LLM server: 4 tries x 60 s before
        with contextlib.closing(hang):
            start = time.perf_counter()
            msg = _error(c, *_explain_args(run["run_id"], f"http://127.0.0.1:{hang.port}/v1", "k"), api_name="/explain")
            took = time.perf_counter() - start
        assert took < 15 and re.search("time limit of 2 s|timed out", msg), (took, msg)


# ----- defect 10: the run cache -----------------------------------------------------------------------------


def test_one_client_cannot_flush_everyones_runs() -> None:
    with launched(run_cache_size=4, runs_per_session=2) as (url, _):
        victim, flooder = _client(url), _client(url)
        kept = victim.predict("Hello", MODEL, 1, api_name="/generate")[1]["run_id"]
        flood = [flooder.predict(f"Text {i}", MODEL, 1, api_name="/generate")[1]["run_id"] for i in range(8)]
        _, data = victim.predict(kept, "saliency", "minimal", -1, 1, api_name="/saliency")
        assert data["run_id"] == kept
        msg = _error(victim, flood[0], "saliency", "minimal", -1, 1, api_name="/saliency")
        assert "unknown or expired" in msg and "each session's last 2 runs" in msg
        assert flooder.predict(flood[-1], "saliency", "minimal", -1, 1, api_name="/saliency")[1]["run_id"]


# ----- defects 8, 9, 11: input errors by name, bounded, escaped ---------------------------------------------


def test_numbers_as_text_are_coerced_and_bad_ones_named(client, run) -> None:
    rid = run["run_id"]
    _, data = client.predict("The capital of France is", MODEL, "3", False, "1.0", "0", "1", "-1", api_name="/generate")
    assert data["token_ids"] == run["token_ids"]
    _, sal = client.predict(rid, "ig", "minimal", "-1", "2", api_name="/saliency")
    assert sal["n_steps"] == 2
    cases = [
        (("Hi", MODEL, 2, True, "hot"), "/generate", "temperature must be a number from 0.01 to 5.0, got 'hot'"),
        (("Hi", MODEL, "eight"), "/generate", "max_new_tokens must be an integer"),
        ((rid, "ig", "minimal", -1, "16 steps"), "/saliency", "n_steps must be an integer from 1 to"),
        ((rid, "ig", "minimal", -1, 2.5), "/saliency", "n_steps must be an integer"),
        ((rid, 3, 0, "x"), "/nmf", "to_layer must be an integer"),
        ((rid, 2, 0, -1, "maybe"), "/nmf", "skip_first must be true or false"),
        (("Hi", MODEL, 1e308), "/generate", r"got 1e\+308"),
        ((rid, "", 0, 3), "/rankings", "position must be -1 .* 1 to 8 .*got 0"),
        ((rid, "", 99, 3), "/rankings", "position must be -1 .* 1 to 8 .*got 99"),
        ((rid, ["a"] * 20, -1, 3), "/rankings", "at most 10 watched tokens"),
    ]
    for args, api, pattern in cases:
        msg = _error(client, *args, api_name=api)
        assert re.search(pattern, msg), (api, args, msg)
    _, _, _, data = client.predict(rid, None, -1, 3, api_name="/rankings")  # watch=None means no watched tokens
    assert data["rankings_watch"] is None


def test_errors_are_bounded_and_escaped(client, run) -> None:
    for rid in ("<b>bold</b><img src=x onerror=alert(1)>", "x" * 100_000):
        msg = _error(client, rid, "ig", "minimal", -1, 2, api_name="/saliency")
        assert "<b>" not in msg and "<img" not in msg and len(msg) < 700, msg[:200]
    assert "&lt;b&gt;bold&lt;/b&gt;" in _error(client, "<b>bold</b>", "ig", "minimal", -1, 2, api_name="/saliency")
    msg = _error(client, "Hi", MODEL, 10**400, api_name="/generate")
    assert len(msg) < 300


def test_held_out_text_over_the_limit_is_named(client, run) -> None:
    args = (run["run_id"], 1, 28, -1, "local", "", "", "", True, 0, "bm25", "short text\n" + "word " * 200)
    msg = _error(client, *args, api_name="/explain")
    assert re.search(r"held-out text 2 is \d+ tokens but this app accepts at most 64", msg), msg


def _raw_call(url: str, api: str, payload: str) -> str:
    """One call through Gradio's HTTP API with a raw JSON body; the text of its event stream (bounded)."""
    req = urllib.request.Request(
        f"{url}gradio_api/call/{api}", data=payload.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        event = json.loads(resp.read(10_000))["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=120) as resp:
        return resp.read(200_000).decode()


def test_raw_json_nan_missing_and_surrogates_get_messages(app, run) -> None:
    url = app[0]
    rid = run["run_id"]
    out = _raw_call(url, "saliency", json.dumps({"data": [rid, "ig", "minimal", -1, float("nan")]}))
    assert "event: error" in out and "n_steps must be an integer" in out, out[:500]
    out = _raw_call(url, "generate", '{"data": ["Hi \\ud800 there", "' + MODEL + '", 2]}')
    assert "event: error" in out and "lone surrogate" in out, out[:500]
    out = _raw_call(url, "generate", json.dumps({"data": ["Hi", MODEL, None]}))
    assert "max_new_tokens is missing" in out, out[:500]
    out = _raw_call(url, "nmf", json.dumps({"data": [rid]}))  # missing arguments
    assert "event: error" in out and ("n_components" in out or "missing" in out), out[:500]
    assert "has raised an exception" not in out


def test_attribution_methods_follow_the_sdk() -> None:
    from ecco_sdk.attribution import METHODS

    assert ATTRIBUTION_METHODS == METHODS


def test_release_memory_trims_the_heap_on_glibc() -> None:
    import platform

    trimmed = release_memory()
    assert trimmed in (True, False)
    if platform.libc_ver()[0] == "glibc":
        blocks = [bytearray(200_000) for _ in range(200)]  # about 40 MB in freed chunks below the mmap threshold
        del blocks
        assert release_memory() is True


def test_layer_view_and_methods_the_model_can_run(client, run) -> None:
    from ecco_sdk.attribution import usable_methods

    html, data = client.predict(run["run_id"], 0, api_name="/layers")
    scores = data["scores_sum"]
    assert data["method"] == "grad_x_act" and data["target_position"] == run["generated_positions"][0]
    assert len(scores) == len(data["layers"]) and all(len(r) == len(data["tokens"]) for r in scores)
    assert "data:image/png;base64," in html
    usable = usable_methods(get_lm(MODEL))
    refused = [m for m in ATTRIBUTION_METHODS if m not in usable]
    for m in refused[:1]:
        msg = _error(client, run["run_id"], m, "minimal", -1, 2, api_name="/saliency")
        assert f"got '{m}'" in msg and "'ig'" in msg
    assert "target must be an integer from -1 to 2" in _error(client, run["run_id"], 7, api_name="/layers")


def _sweep_cases(rid: str) -> list[tuple[str, tuple]]:
    """Hostile inputs for every endpoint: wrong types, out of range, huge, markup, NaN-like, surrogate-free junk."""
    big, markup = "9" * 400, "<script>alert(1)</script><img src=x>"
    return [
        ("/generate", (None, MODEL, 4)),
        ("/generate", (["list"], MODEL, 4)),
        ("/generate", ("x" * 50_000, MODEL, 4)),
        ("/generate", ("Hi", markup, 4)),
        ("/generate", ("Hi", MODEL, -1)),
        ("/generate", ("Hi", MODEL, big)),
        ("/generate", ("Hi", MODEL, 4, "yes please")),
        ("/generate", ("Hi", MODEL, 4, True, "nan")),
        ("/generate", ("Hi", MODEL, 4, True, 1.0, -5)),
        ("/generate", ("Hi", MODEL, 4, True, 1.0, 0, 7)),
        ("/generate", ("Hi", MODEL, 4, True, 1.0, 0, 1.0, 2**40)),
        ("/saliency", (markup, "ig", "minimal", -1, 4)),
        ("/saliency", (12345, "ig", "minimal", -1, 4)),
        ("/saliency", (rid, markup, "minimal", -1, 4)),
        ("/saliency", (rid, "ig", ["minimal"], -1, 4)),
        ("/saliency", (rid, "ig", "minimal", 99, 4)),
        ("/saliency", (rid, "ig", "minimal", "last", 4)),
        ("/saliency", (rid, "ig", "minimal", -1, 0)),
        ("/saliency", (rid, "ig", "minimal", -1, "inf")),
        ("/layers", (rid, big)),
        ("/layers", (None, -1)),
        ("/rankings", (rid, "a," * 5000, -1, 3)),
        ("/rankings", (rid, "", 10**9, 3)),
        ("/rankings", (rid, "", -1, 0)),
        ("/rankings", (rid, {"a": 1}, -1, 3)),
        ("/nmf", (rid, 0, 0, -1)),
        ("/nmf", (rid, 3, -5, -1)),
        ("/nmf", (rid, 3, 10, 5)),
        ("/nmf", (rid, "3.5", 0, -1)),
        ("/explain", (rid, 1, 28, -1, "telepathy", "", "", "", False, 0, "bm25", "")),
        ("/explain", (rid, 1, 28, -1, "openai", "javascript:alert(1)", "", "", False, 0, "bm25", "")),
        ("/explain", (rid, 1, 28, -1, "openai", "http://" + "a" * 400, "", "", False, 0, "bm25", "")),
        ("/explain", (rid, 1, 28, -1, "local", "", "evil/remote-code", "", False, 0, "bm25", "")),
        ("/explain", (rid, 1, 28, -1, "local", "", "", "", False, 99, "bm25", "")),
        ("/explain", (rid, 1, 28, -1, "local", "", "", "", False, 0, "grep", "")),
        ("/explain", (rid, 1, 28, -1, "local", "", "", "", True, 0, "bm25", "a\nb\nc\nd\ne\nf")),
        ("/explain", (rid, 1, 28, -1, "local", "", MODEL, "", "sometimes", 0, "bm25", "")),
    ]


def test_hostile_sweep_gives_specific_bounded_escaped_errors(app, client, run) -> None:
    from gradio_client.exceptions import AppError

    cases = _sweep_cases(run["run_id"])
    generic, slow = [], []
    for api, args in cases:
        start = time.perf_counter()
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=api)
        msg = str(err.value)
        if "has raised an exception" in msg or not msg.strip() or msg.strip() == "None":
            generic.append((api, args[:3]))
        assert "<script>" not in msg and "<img" not in msg and len(msg) < 800, (api, msg[:200])
        if time.perf_counter() - start > 20:
            slow.append(api)
    print(f"hostile sweep: {len(cases)} bad inputs, {len(cases) - len(generic)} specific errors, slow: {slow}")
    assert generic == [] and slow == []
    _, again = client.predict("The capital of France is", MODEL, 3, api_name="/generate")  # still serving
    assert again["token_ids"] == run["token_ids"]
    assert app[1].ecco_server.jobs.counts("generate") == (0, 0)


# ----- the serving pieces without a server --------------------------------------------------------------------


def test_config_reads_policy_and_limits_from_the_environment() -> None:
    env = {"ECCO_APP_CALLER_BASE_URL": " public ", "ECCO_APP_MAX_REQUEST_S": "5", "ECCO_APP_MAX_QUEUE": "3"}
    cfg = ServingConfig.from_env(env)
    assert (cfg.caller_base_url, cfg.max_request_s, cfg.max_queue) == ("public", 5.0, 3)
    assert "caller_base_url" not in cfg.to_dict() and cfg.to_dict()["max_request_s"] == 5.0  # no URLs shown
    with pytest.raises(InputError, match="max_request_s must be a positive number"):
        ServingConfig(max_request_s=float("nan"))


def test_run_cache_share_per_owner_unit() -> None:
    class Out:
        pass

    cache = RunCache(capacity=4, ttl_s=60, per_owner=2)
    mine = cache.put(MODEL, "p", Out(), owner="victim")
    flood = [cache.put(MODEL, str(i), Out(), owner="flooder").run_id for i in range(10)]
    assert mine.run_id in cache and sum(r in cache for r in flood) == 2 and flood[-1] in cache
    others = [cache.put(MODEL, str(i), Out(), owner=f"s{i}").run_id for i in range(3)]  # 3 more sessions
    assert len(cache) == 4 and all(r in cache for r in others)  # the largest owner (flooder) gave way first


def test_jobs_cancel_stops_the_work_and_bounds_are_enforced() -> None:
    import asyncio
    import threading

    from ecco_sdk.cancel import checkpoint

    jobs = Jobs(ServingConfig(concurrency_limit=1, max_queue=1, max_jobs_per_session=2, max_request_s=30))
    steps: list[int] = []
    started = threading.Event()

    def work() -> str:
        started.set()
        for i in range(600):
            checkpoint()
            steps.append(i)
            time.sleep(0.01)
        return "done"

    async def scenario() -> None:
        task = asyncio.create_task(jobs.run("x", "a", work))
        await asyncio.to_thread(started.wait, 5)
        waiting = asyncio.create_task(jobs.run("x", "b", work))
        await asyncio.sleep(0.05)
        assert jobs.counts("x") == (1, 2)
        with pytest.raises(BusyError, match="busy"):
            await jobs.run("x", "c", work)
        task.cancel()
        waiting.cancel()
        for t in (task, waiting):
            with pytest.raises(asyncio.CancelledError):
                await t
        assert await asyncio.to_thread(_wait, lambda: jobs.counts("x") == (0, 0), 5)

    asyncio.run(scenario())
    assert 0 < len(steps) < 600  # it stopped at a checkpoint, long before the end
    n = len(steps)
    time.sleep(0.2)
    assert len(steps) == n  # and nothing runs on afterwards (the waiting job never started)

    capped = Jobs(ServingConfig(max_request_s=0.2))
    with pytest.raises(TimeLimitError, match=r"this /x request ran past its time limit of 0.2 s"):
        asyncio.run(capped.run("x", "a", work))


def test_saliency_auto_steps_shows_the_error_estimate(client, run) -> None:
    html, data = client.predict(run["run_id"], "ig", "minimal", -1, "auto", api_name="/saliency")
    assert data["n_steps"] <= 64 and data["params"]["error_estimate"] is not None
    assert f"{data['n_steps']} steps" in html and "estimated error" in html  # the Saliency tab shows them
    _, fixed = client.predict(run["run_id"], "ig", "minimal", -1, 4, api_name="/saliency")
    assert fixed["n_steps"] == 4 and "error_estimate" not in fixed["params"]  # recomputed, not the auto result
