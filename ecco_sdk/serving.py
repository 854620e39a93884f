"""Serving the SDK to many users at once: limits, a model allow-list, a run cache, and ZeroGPU support.

Everything the Gradio app (space/app.py) does besides laying out widgets lives here, so the app only
wires these functions to components. Each endpoint function validates its inputs against a
`ServingConfig` (raising `InputError` with a message that names the limit), composes SDK calls and
returns an `EndpointResult`: the visuals to show and a JSON-serializable dict for API clients.

Runs: `generate` stores its `OutputSeq` in a `RunCache` under a random run id; the other endpoints take
that id, so tabs work on one generation without recomputing it. A missing or expired id is an error
that says to generate again (nothing is silently recomputed). Run ids are unguessable, and each call
captures into its own recording (see ecco_sdk.capture), so parallel users never see each other's data.

Requests: the app runs each endpoint through `Jobs` (long-lived worker threads per endpoint, a bounded queue
that answers "busy", a per-request time cap, and cancellation that stops the work at its next
`cancel.checkpoint()`). OpenAI-compatible servers follow `openai_target`: the operator's key goes only to
the operator's endpoint, and a caller-given base_url is allowed only as `ServingConfig.caller_base_url` says.
Inputs are checked by name (`as_int`, `as_float`, `as_bool`, `as_text`, `as_choice`), and an error repeats
at most `ECHO_CHARS` characters of what was sent.

ZeroGPU: the heavy steps that touch model weights (`_generate`, `_attribute`, `_lens`, `_explain`) are
wrapped by `gpu`, i.e. `spaces.GPU` when the `spaces` package is importable. Such a function may run in
another process, so it takes and returns plain data (runs detached from their `LM`) and all cache
updates happen here in the calling process.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import ctypes.util
import dataclasses
import gc
import html
import ipaddress
import math
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from .attribution import METHODS as ATTRIBUTION_METHODS
from .cancel import limits, remaining
from .checks import check_choice
from .errors import ConfigurationError, EccoError, InputError
from .lm import LM, from_pretrained
from .models import EMBEDDED
from .output import OutputSeq
from .render import Visual, figure_to_html

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Hub models offered only when the app runs on a Hugging Face Space (where the hub is reachable).
HUB_MODELS: tuple[str, ...] = ("HuggingFaceTB/SmolLM2-135M-Instruct", "openai-community/gpt2")
DEFAULT_MODEL = "smollm2-135m-instruct"
RETRIEVERS: tuple[str, ...] = ("bm25", "dense", "hybrid")
EXPLAIN_BACKENDS: tuple[str, ...] = ("local", "openai")
#: Who may name an OpenAI-compatible server: nobody, public servers only, or any server ("auto": off on a
#: Space, any locally, so `make app` can use a local vLLM/llama.cpp server).
CALLER_BASE_URL_MODES: tuple[str, ...] = ("auto", "off", "public", "any")
#: How the IG step count may be given.
AUTO_HINT = ' (or "auto": as many as IG needs to converge, up to this limit)'
#: Most characters of a caller's input an error message repeats.
ECHO_CHARS = 80


@dataclass(frozen=True)
class ServingConfig:
    """Per-request limits, cache sizes and secret policy; `from_env` reads overrides like ECCO_APP_MAX_NEW_TOKENS=32.

    Text fields: `openai_base_url` is the operator's OpenAI-compatible server (empty: $OPENAI_BASE_URL, else
    api.openai.com), the only place the operator's $OPENAI_API_KEY is ever sent. `caller_base_url` says
    whether callers may name their own server (one of CALLER_BASE_URL_MODES); `allowed_base_urls` lists
    servers (comma-separated URL prefixes) callers may always name, private ones included.
    """

    max_input_tokens: int = 64
    max_new_tokens: int = 24
    max_components: int = 8
    max_ig_steps: int = 64
    default_ig_steps: int = 16
    max_watch_tokens: int = 10
    max_examples: int = 6
    max_held_out: int = 4
    explain_max_tokens: int = 48
    run_cache_size: int = 32
    runs_per_session: int = 8
    run_ttl_s: float = 3600.0
    concurrency_limit: int = 2
    max_queue: int = 4
    max_jobs_per_session: int = 2
    max_request_s: float = 120.0
    upstream_timeout_s: float = 30.0
    openai_base_url: str = ""
    caller_base_url: str = "auto"
    allowed_base_urls: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "str":
                if not isinstance(value, str):
                    raise InputError(f"ServingConfig.{f.name} must be text, got {shown(value)}")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InputError(f"ServingConfig.{f.name} must be a positive number, got {shown(value)}")
        check_choice(self.caller_base_url, "ServingConfig.caller_base_url", CALLER_BASE_URL_MODES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        """Defaults overridden by ECCO_APP_<FIELD> variables, so a Space can change limits without code."""
        env = os.environ if env is None else env
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"ECCO_APP_{f.name.upper()}")
            if raw is None:
                continue
            try:
                kw[f.name] = raw.strip() if f.type == "str" else float(raw) if f.type == "float" else int(raw)
            except ValueError as err:
                raise InputError(f"ECCO_APP_{f.name.upper()} must be a number, got {shown(raw)}") from err
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The limits as plain data (shown in the app and returned to API clients); no server URLs."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not isinstance(v, str)}


# ----- ZeroGPU ---------------------------------------------------------------------------------------------


def gpu(fn: F) -> F:
    """Run `fn` under `spaces.GPU` on Hugging Face ZeroGPU hardware; elsewhere return it unchanged."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


# ----- models ----------------------------------------------------------------------------------------------


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True when running on a Hugging Face Space (which sets SPACE_ID)."""
    return bool((os.environ if env is None else env).get("SPACE_ID"))


def allowed_models(env: Mapping[str, str] | None = None) -> list[str]:
    """The installed embedded causal models; the hub models too on a Space. Nothing else is ever loaded."""
    names = [m.name for m in EMBEDDED.values() if m.kind == "causal" and m.installed()]
    if on_space(env):
        names += list(HUB_MODELS)
    return names


def check_model(name: Any, allowed: Sequence[str]) -> str:
    """The model name if it is on the allow-list, else an InputError naming the allowed ones."""
    if not isinstance(name, str) or name.strip() not in allowed:
        raise InputError(f"model {shown(name)} is not served by this app; choose one of: {', '.join(allowed)}")
    return name.strip()


_LMS: dict[str, LM] = {}
_LMS_LOCK = threading.Lock()


def _device() -> str | None:
    import torch

    return "cuda" if torch.cuda.is_available() else None


def get_lm(name: str) -> LM:
    """The process-wide LM for an allowed model, loaded on first use (never with trust_remote_code)."""
    with _LMS_LOCK:
        lm = _LMS.get(name)
    if lm is None:
        # from_pretrained shares weights per process and serialises concurrent loads of one model.
        lm = from_pretrained(name, device=_device(), verbose=True)
        with _LMS_LOCK:
            lm = _LMS.setdefault(name, lm)
    return lm


def is_loaded(name: str) -> bool:
    """Whether a model is already in memory (so the app can say when a request will wait for a load)."""
    with _LMS_LOCK:
        return name in _LMS


def preload(name: str) -> threading.Thread:
    """Start loading a model in the background, so the first request does not pay for it."""
    t = threading.Thread(target=get_lm, args=(name,), name=f"ecco-preload-{name}", daemon=True)
    t.start()
    return t


def load_app() -> ModuleType:
    """The repository's space/app.py as a module (it is the Space's entry file, not part of the package)."""
    import importlib.util

    from .errors import ConfigurationError
    from .publish import default_space_dir

    path = default_space_dir() / "app.py"
    if not path.exists():
        raise ConfigurationError(f"the app lives in the repository's space/ folder, not found at {path}")
    spec = importlib.util.spec_from_file_location("ecco_space_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----- the run cache ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """One generation kept for the other tabs: its model, prompt, output, owner, and a lock for in-place updates."""

    run_id: str
    model: str
    prompt: str
    out: OutputSeq
    created: float
    owner: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class RunCache:
    """A thread-safe LRU of runs with an age limit, keyed by random run ids, shared fairly between sessions.

    Each owner (a browser or API session) keeps at most `per_owner` runs; when the whole cache is full the
    least recently used run of the owner holding the most runs goes first, so one client generating in a
    loop evicts its own runs, not everybody's. Run ids stay capabilities: whoever has one may read it.
    """

    def __init__(
        self,
        capacity: int = 32,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        per_owner: int | None = None,
    ):
        per_owner = capacity if per_owner is None else per_owner
        if capacity < 1 or ttl_s <= 0 or per_owner < 1:
            raise InputError("RunCache needs capacity >= 1, per_owner >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.per_owner = min(per_owner, capacity)
        self.ttl_s = ttl_s
        self._clock = clock
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, model: str, prompt: str, out: OutputSeq, owner: str = "") -> Run:
        """Store a run under a fresh id; evict the owner's oldest beyond its share, then the largest owner's."""
        run = Run(secrets.token_hex(8), model, prompt, out, self._clock(), owner)
        with self._lock:
            self._runs[run.run_id] = run
            mine = [r for r in self._runs.values() if r.owner == owner]
            for old in mine[: max(0, len(mine) - self.per_owner)]:
                del self._runs[old.run_id]
            while len(self._runs) > self.capacity:
                counts: dict[str, int] = {}
                for r in self._runs.values():
                    counts[r.owner] = counts.get(r.owner, 0) + 1
                most = max(counts.values())
                victim = next(r for r in self._runs.values() if counts[r.owner] == most)  # LRU first
                del self._runs[victim.run_id]
        return run

    def describe(self) -> str:
        """What the cache promises, in words (used in errors and the app)."""
        return (
            f"this app keeps each session's last {self.per_owner} runs ({self.capacity} in all; when it is full the "
            f"busiest session's oldest runs go first) for at most {self.ttl_s / 60:g} minutes"
        )

    def get(self, run_id: Any) -> Run:
        """The run with this id (marked recently used), or an InputError saying to generate again."""
        if run_id is not None and not isinstance(run_id, str):
            raise InputError(f"run_id must be the text returned by /generate, got {shown(run_id)}")
        rid = run_id.strip() if isinstance(run_id, str) else ""
        if not rid:
            raise InputError("no run id: generate text first (Generate tab or /generate), then pass its run_id")
        with self._lock:
            run = self._runs.get(rid)
            if run is not None and self._clock() - run.created > self.ttl_s:
                del self._runs[rid]
                run = None
            if run is not None:
                self._runs.move_to_end(rid)
        if run is None:
            raise InputError(
                f"run id {shown(rid)} is unknown or expired ({self.describe()}); generate again to get a new run_id"
            )
        return run

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._runs


# ----- validation -------------------------------------------------------------------------------------------


def shown(value: Any, limit: int = ECHO_CHARS) -> str:
    """A caller's value as an error message repeats it: its repr, cut to `limit` characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python refuses over 4300 digits)
        return "(a number with too many digits)"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _number(value: Any) -> Any:
    """A number typed as text ("8", " 0.5 ") becomes that number; anything else is left for the range check."""
    if isinstance(value, str) and len(value) <= 40:
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return value


def as_int(value: Any, name: str, lo: int, hi: int, hint: str = "", default: int | None = None) -> int:
    """An integer in [lo, hi] (integral floats and numeric text accepted; None: `default`), else a message."""
    if value is None and default is not None:
        return default
    if value is None:
        raise InputError(f"{name} is missing: give an integer from {lo} to {hi}{hint}")
    number = _number(value)
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not lo <= number <= hi:
        raise InputError(f"{name} must be an integer from {lo} to {hi}{hint}, got {shown(value)}")
    return number


def as_float(value: Any, name: str, lo: float, hi: float, default: float | None = None) -> float:
    """A number in [lo, hi] (numeric text accepted; NaN refused; None: `default`), else a message with the range."""
    if value is None and default is not None:
        return default
    if value is None:
        raise InputError(f"{name} is missing: give a number from {lo} to {hi}")
    number = _number(value)
    if isinstance(number, bool) or not isinstance(number, int | float) or not lo <= number <= hi:
        raise InputError(f"{name} must be a number from {lo} to {hi}, got {shown(value)}")
    return float(number)


def as_bool(value: Any, name: str, default: bool | None = None) -> bool:
    """A checkbox value: true/false (or 1/0, "true"/"false" as text; None: `default`), else a message."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise InputError(f"{name} must be true or false, got {shown(value)}")


def as_text(value: Any, name: str, max_chars: int, default: str | None = "") -> str:
    """Text of at most `max_chars` characters that is valid Unicode (None: `default`, when one is given)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {shown(value)}")
    if len(value) > max_chars:
        raise InputError(f"{name} is {len(value)} characters; this app accepts at most {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start]
        raise InputError(f"{name} holds a lone surrogate {bad!r} at character {err.start}, which is not text") from None
    return value


def as_choice(value: Any, name: str, allowed: Sequence[str], default: str | None = None) -> str:
    """One of the `allowed` option names (spaces around ignored; None: `default`), else a message listing them."""
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.strip() in allowed:
        return value.strip()
    raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {shown(value)}")


def check_prompt(lm: LM, prompt: Any, cfg: ServingConfig, what: str = "the prompt") -> int:
    """Number of tokens of a prompt (or held-out text: `what`), after checking it is non-empty and within limits."""
    text = as_text(prompt, what, cfg.max_input_tokens * 64)
    if not text.strip():
        raise InputError(f"{what} is empty; type some text")
    n = int(lm.encode(text).shape[1])
    if n > cfg.max_input_tokens:
        raise InputError(
            f"{what} is {n} tokens but this app accepts at most {cfg.max_input_tokens} input tokens; shorten it"
        )
    return n


def _layer_bounds(from_layer: Any, to_layer: Any) -> tuple[int | None, int | None]:
    """API layer range: integers; to_layer -1 means 'through the last layer' (the SDK checks the bounds)."""
    lo = as_int(from_layer, "from_layer", -(10**6), 10**6)
    hi = as_int(to_layer, "to_layer", -(10**6), 10**6)
    return lo, (None if hi == -1 else hi)


# ----- the secret policy for OpenAI-compatible servers ---------------------------------------------------------


def caller_url_mode(cfg: ServingConfig, env: Mapping[str, str] | None = None) -> str:
    """Whether callers may name a server: "off", "public" or "any" ("auto" is off on a Space, any elsewhere)."""
    if cfg.caller_base_url != "auto":
        return cfg.caller_base_url
    return "off" if on_space(env) else "any"


def _url_prefixes(listed: str) -> list[str]:
    return [u.strip().rstrip("/") for u in listed.split(",") if u.strip()]


def _refused_address(host: str, port: int) -> str | None:
    """The first private, loopback, link-local or otherwise non-public address `host` resolves to, if any."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InputError(f"base_url host {shown(host)} does not resolve; check the URL") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if not ip.is_global or ip.is_multicast:
            return str(ip)
    return None


def check_caller_url(url: str, cfg: ServingConfig, env: Mapping[str, str] | None = None) -> str:
    """A caller-given server URL the operator's policy allows (scheme, no credentials, address), else InputError.

    Every address the host resolves to is checked. The connection resolves the name again, so a DNS
    server that answers differently the second time could still reach a private address: operators who
    need certainty list their servers in `allowed_base_urls` and set `caller_base_url` to "off".
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"base_url must be an http:// or https:// URL, got {shown(url)}")
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "base_url must not hold a user name or password (user:pass@host); type your key in api_key instead"
        )
    if any(url.rstrip("/") == p or url.startswith(p + "/") for p in _url_prefixes(cfg.allowed_base_urls)):
        return url
    mode = caller_url_mode(cfg, env)
    if mode == "off":
        raise InputError(
            "this app does not send requests to a base_url chosen by the caller; leave base_url empty to use the "
            "app's own server (its operator can allow others with ECCO_APP_CALLER_BASE_URL or "
            "ECCO_APP_ALLOWED_BASE_URLS)"
        )
    if mode == "public":
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InputError(f"base_url has an invalid port: {shown(url)}") from None
        bad = _refused_address(parts.hostname, port)
        if bad is not None:
            raise InputError(
                f"base_url host {shown(parts.hostname)} resolves to {bad}, a private, loopback or link-local "
                "address, which this app does not call"
            )
    return url


def openai_target(
    cfg: ServingConfig, base_url: Any, api_key: Any, env: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(server URL, key) for one OpenAI-compatible request under the operator's secret policy.

    No base_url: the operator's server (`cfg.openai_base_url`, else $OPENAI_BASE_URL, else api.openai.com)
    with the caller's key, else the operator's $OPENAI_API_KEY. A caller-given base_url (if the policy allows
    it) only ever gets the caller's own key ("" means none): the operator's key never leaves for it.
    A None key means "the operator's", which the OpenAI backend reads from the environment.
    """
    env = os.environ if env is None else env
    url = as_text(base_url, "base_url", 300).strip()
    if api_key is not None and not isinstance(api_key, str):
        raise InputError("api_key must be text")  # never echoed, even back to its sender
    key = as_text(api_key, "api_key", 400).strip()
    if url:
        return check_caller_url(url, cfg, env), key
    own = cfg.openai_base_url.strip() or env.get("OPENAI_BASE_URL", "").strip() or None
    if key:
        return own, key
    if own is None and not env.get("OPENAI_API_KEY"):
        raise ConfigurationError(
            "the openai backend needs an API key: type your own in api_key (used for this request only), or "
            "choose the local backend"
        )
    return own, None


# ----- jobs: worker threads, bounded queues, time caps, cancellation -------------------------------------------


class BusyError(EccoError):
    """The app has as many requests running and waiting as it accepts; the caller should try again later."""


_LIBC: Any = None


def release_memory() -> bool:
    """Hand freed heap pages back to the OS (glibc malloc_trim), after a young-generation collection.

    Measured on the app's process after a 4-step IG: RSS 1161 -> 1042 MB, the trim taking 25-63 ms; a full
    gc.collect() took 750 ms there and freed nothing more (tensors go by reference counting), so it is skipped.

    Returns:
        True when glibc released memory.
    """
    global _LIBC
    gc.collect(1)
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
            _LIBC.malloc_trim  # noqa: B018 - glibc only (musl and macOS lack it)
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    return bool(_LIBC.malloc_trim(0))


#: What each endpoint's time-cap message suggests.
TIME_HINTS = {
    "saliency": "ask for fewer IG steps or use a shorter run",
    "explain": "ask for fewer factors, no scoring, or fewer held-out texts",
    "nmf": "ask for fewer factors or fewer layers",
}


class Jobs:
    """Runs endpoint work on long-lived worker threads: bounded per endpoint and session, time-capped, cancellable.

    Gradio cannot stop a thread; a cancelled request instead sets its budget's cancel flag, and the work
    stops at its next `cancel.checkpoint()` (IG step batches, scoring loops, LLM calls). Until it has
    stopped it keeps its worker, so at most `concurrency_limit` works per endpoint run at once.
    """

    def __init__(self, cfg: ServingConfig) -> None:
        self.cfg = cfg
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # per endpoint: running + waiting
        self._running: dict[str, int] = {}
        self._sessions: dict[str, int] = {}

    def _pool(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(self.cfg.concurrency_limit, thread_name_prefix=f"ecco-{name}")
            return self._pools[name]

    def counts(self, name: str) -> tuple[int, int]:
        """(running, running + waiting) jobs of one endpoint, cancelled ones included until they have stopped."""
        with self._lock:
            return self._running.get(name, 0), self._pending.get(name, 0)

    def _admit(self, name: str, session: str) -> None:
        cfg = self.cfg
        with self._lock:
            if self._sessions.get(session, 0) >= cfg.max_jobs_per_session:
                raise BusyError(
                    f"you already have {cfg.max_jobs_per_session} requests running or waiting; wait for them to "
                    "finish (or cancel them) and try again"
                )
            if self._pending.get(name, 0) >= cfg.concurrency_limit + cfg.max_queue:
                raise BusyError(f"the app is busy: /{name} has {cfg.max_queue} requests waiting; try again in a minute")
            self._pending[name] = self._pending.get(name, 0) + 1
            self._sessions[session] = self._sessions.get(session, 0) + 1

    def _release(self, name: str, session: str) -> None:
        with self._lock:
            self._pending[name] -= 1
            self._sessions[session] -= 1
            if not self._sessions[session]:
                del self._sessions[session]

    def _work(self, name: str, event: threading.Event, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running[name] = self._running.get(name, 0) + 1
        hint = TIME_HINTS.get(name, "try a smaller request")
        try:
            with limits(
                self.cfg.max_request_s, event, what=f"this /{name} request", hint=f"{hint} (ECCO_APP_MAX_REQUEST_S)"
            ):
                return fn()
        finally:
            with self._lock:
                self._running[name] -= 1

    def _trim_if_idle(self) -> None:
        with self._lock:
            busy = any(self._running.values())
        if not busy:
            release_memory()

    async def run(self, name: str, session: str, fn: Callable[[], T]) -> T:
        """Await `fn()` on the endpoint's workers; cancelling the awaiting task cancels the work.

        When the last running job ends, freed memory goes back to the OS on a side thread (off the reply's path).
        """
        self._admit(name, session)
        event = threading.Event()
        ctx = contextvars.copy_context()  # the caller's context (Gradio's progress and request) goes along
        try:
            job = self._pool(name).submit(ctx.run, self._work, name, event, fn)
        except BaseException:
            self._release(name, session)
            raise
        job.add_done_callback(lambda _: self._release(name, session))
        job.add_done_callback(lambda _: threading.Thread(target=self._trim_if_idle, daemon=True).start())
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            event.set()  # stops the work at its next checkpoint; a job still waiting never starts
            job.cancel()
            raise

    def shutdown(self) -> None:
        """Stop accepting work and let the workers finish."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


# ----- endpoints --------------------------------------------------------------------------------------------


@dataclass
class EndpointResult:
    """What an endpoint shows (visuals, in the app's output order) and returns to API clients (data)."""

    visuals: list[Visual]
    data: dict[str, Any]

    def html(self) -> list[str]:
        """Script-free HTML of each visual, for gr.HTML."""
        return [v.static_html for v in self.visuals]


def _detached(out: OutputSeq) -> OutputSeq:
    """A shallow copy without the LM back-reference, so it can cross to a ZeroGPU worker cheaply."""
    return dataclasses.replace(out, lm=None, attributions=dict(out.attributions))


@gpu
def _generate(model: str, prompt: str, n_new: int, sampling: dict[str, Any]) -> OutputSeq:
    """Generation on the model's device; returns the run without its LM."""
    out = get_lm(model).generate(prompt, generate=n_new, **sampling)
    out.lm = None
    return out


@gpu
def _attribute(model: str, out: OutputSeq, method: str, n_steps: int | str, max_steps: int) -> Any:
    """One attribution method over every generated token of a detached run ("auto" IG steps up to max_steps)."""
    from .attribution import attribute_output

    lm = get_lm(model)
    extra = {"max_steps": max_steps} if n_steps == "auto" else {}
    return attribute_output(lm, out.attach(lm), [method], n_steps=n_steps, **extra)[method]


@gpu
def _lens(model: str, out: OutputSeq, position: int | None, watch: list[str], topk: int) -> tuple[Any, Any, Any]:
    """Logit-lens analyses of a detached run: layer predictions, rankings, and rankings of watched tokens."""
    out.attach(get_lm(model))
    preds = out.layer_predictions(position=position, topk=topk)
    ranks = out.rankings()
    watched = out.rankings_watch(watch, position=position) if watch else None
    return preds, ranks, watched


@gpu
def _layer_view(model: str, out: OutputSeq, target: int) -> Any:
    """Gradient x activation of one generated token at every layer of a detached run (one forward, one backward)."""
    return out.attach(get_lm(model)).layer_attributions(target=target, method="grad_x_act")


@gpu
def _explain(model: str, out: OutputSeq, n_components: int, layers: tuple, backend: dict[str, Any], **kw: Any) -> Any:
    """Factorize, explain each factor and (optionally) score, on a detached run.

    `backend` is plain data ({"kind", "model", "base_url", "api_key", "timeout"}, from `openai_target`); the
    OpenAI backend object (whose key is a non-picklable Secret) is built here, used for this call, and dropped.
    """
    from .explain import OpenAIBackend, explain_output

    if backend["kind"] == "local":
        llm: Any = "local" + (f":{backend['model']}" if backend["model"] else "")
    else:
        timeout = max(1.0, remaining(backend["timeout"]) or backend["timeout"])  # no attempt outlives the request
        llm = OpenAIBackend(
            backend["model"] or None,
            base_url=backend["base_url"] or None,
            api_key=backend["api_key"],
            timeout=timeout,
            max_retries=2,
        )
    out.attach(get_lm(model))
    return explain_output(out, n_components, from_layer=layers[0], to_layer=layers[1], backend=llm, **kw)


class Server:
    """The app's state: limits, allowed models, the run cache and the job runner; one method per API endpoint.

    Endpoint methods are plain blocking calls; the app runs them through `self.jobs` (worker threads,
    bounded queues, time caps, cancellation). `owner` is the caller's session, which shares the run cache.
    """

    def __init__(self, config: ServingConfig | None = None, models: Sequence[str] | None = None) -> None:
        self.config = config or ServingConfig.from_env()
        allowed = allowed_models()
        if models is not None:
            for m in models:
                check_model(m, allowed)
            allowed = list(models)
        if not allowed:
            raise InputError("the app needs at least one model")
        self.models = allowed
        cfg = self.config
        self.runs = RunCache(cfg.run_cache_size, cfg.run_ttl_s, per_owner=cfg.runs_per_session)
        self.jobs = Jobs(cfg)

    # -- generate
    def generate(
        self,
        prompt: str,
        model: str,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = -1,
        owner: str = "",
    ) -> EndpointResult:
        """Validate, generate, keep the run; data is OutputSeq.to_dict() plus run_id and the limits."""
        cfg = self.config
        model = check_model(model, self.models)
        n_new = as_int(max_new_tokens, "max_new_tokens", 1, cfg.max_new_tokens, " (this app's limit)")
        sampling = {
            "do_sample": as_bool(do_sample, "do_sample", default=False),
            "temperature": as_float(temperature, "temperature", 0.01, 5.0, default=1.0),
            "top_k": as_int(top_k, "top_k", 0, 1000, " (0 = off)", default=0) or None,
            "top_p": as_float(top_p, "top_p", 0.01, 1.0, default=1.0),
            "seed": as_int(seed, "seed", -1, 2**31 - 1, " (-1 = random)", default=-1),
        }
        sampling["top_p"] = None if sampling["top_p"] >= 1.0 else sampling["top_p"]
        sampling["seed"] = None if sampling["seed"] == -1 else sampling["seed"]
        check_prompt(get_lm(model), prompt, cfg)
        out = _generate(model, prompt, n_new, sampling)
        run = self.runs.put(model, prompt, out.attach(get_lm(model)), owner)
        data = {"run_id": run.run_id, "model": model, "output_text": out.output_text, **out.to_dict()}
        return EndpointResult([out.view()], data)

    def attribution_methods(self, model: str) -> tuple[str, ...]:
        """The attribution methods that can run on a served model (all of them until it is loaded)."""
        from .attribution import usable_methods

        return usable_methods(get_lm(model)) if is_loaded(model) else ATTRIBUTION_METHODS

    # -- saliency
    def saliency(
        self, run_id: str, method: str = "ig", style: str = "minimal", target: int = -1, n_steps: int | None = None
    ) -> EndpointResult:
        """Input attribution of the run's generated tokens (computed once per method and step count).

        A cancelled or overdue computation raises before anything is stored, so the run keeps no partial result.
        """
        from .attribution import canonical_method

        cfg = self.config
        run = self.runs.get(run_id)
        method = canonical_method(as_choice(method, "method", self.attribution_methods(run.model), default="ig"))
        style = as_choice(style, "style", ("minimal", "detailed"), default="minimal")
        auto = method == "ig" and isinstance(n_steps, str) and n_steps.strip().lower() == "auto"
        steps = "auto" if auto else as_int(n_steps, "n_steps", 1, cfg.max_ig_steps, AUTO_HINT, cfg.default_ig_steps)
        n_gen = run.out.n_generated
        hint = f" (index of a generated token, 0..{n_gen - 1}; -1 = last)"
        t = as_int(target, "target", -1, n_gen - 1, hint, default=-1)
        with run.lock:  # one attribution per method at a time on a shared run
            have = run.out.attributions.get(method)
            stale = (
                method == "ig"
                and have is not None
                and (auto != (have.error_estimate is not None) or (not auto and have.n_steps != steps))
            )
            if have is None or stale:
                run.out.attributions[method] = _attribute(
                    run.model, _detached(run.out), method, steps, cfg.max_ig_steps
                )
            attr = run.out.attributions[method]
            view = run.out.primary_attributions(method, style=style, target=None if t == -1 else t)
        sel = n_gen - 1 if t == -1 else t
        data = {
            "run_id": run.run_id,
            "tokens": list(run.out.tokens),
            "n_input_tokens": run.out.n_input_tokens,
            "selected_target": sel,
            "selected_position": int(attr.target_positions[sel]),
            **attr.to_dict(),
        }
        return EndpointResult([view], data)  # the view notes IG's steps and error estimate when it has them

    # -- layer view
    def layers(self, run_id: str, target: int = -1) -> EndpointResult:
        """How much each position's state at each layer matters to one generated token (gradient x activation)."""
        from .render.layers import layer_attribution_view

        run = self.runs.get(run_id)
        n_gen = run.out.n_generated
        hint = f" (index of a generated token, 0..{n_gen - 1}; -1 = last)"
        t = as_int(target, "target", -1, n_gen - 1, hint, default=-1)
        la = _layer_view(run.model, _detached(run.out), t)
        sums = np.asarray(la.scores_sum, dtype=float)
        data = {
            "run_id": run.run_id,
            "method": la.method,
            "target_kind": la.target_kind,
            "tokens": list(la.tokens),
            "target_position": int(la.target_position),
            "layers": np.asarray(la.layers).tolist(),
            "scores_sum": [[float(v) if np.isfinite(v) else None for v in row] for row in sums],  # NaN -> null
        }
        return EndpointResult([layer_attribution_view(la, aggregation="sum")], data)

    # -- logit lens
    def rankings(
        self, run_id: str, watch: str | Sequence[str] = "", position: int = -1, topk: int = 5
    ) -> EndpointResult:
        """Layer predictions at a position, the rankings heatmap, and rankings of watched tokens."""
        run = self.runs.get(run_id)
        out = run.out
        n = len(out.tokens)
        # 0 is refused too: the first token has nothing before it to predict it from.
        valid = f"-1 (the first generated token) or an index into the run's tokens, 1 to {n} ({n} = what comes next)"
        try:
            pos = as_int(position, "position", -1, n, default=-1)
        except InputError:
            pos = 0
        if pos == 0:
            raise InputError(f"position must be {valid}, got {shown(position)}")
        topk = as_int(topk, "topk", 1, 10, default=5)
        items = _watch_list("" if watch is None else watch, self.config.max_watch_tokens)
        preds, ranks, watched = _lens(run.model, _detached(out), None if pos == -1 else pos, items, topk)
        visuals = [figure_to_html(preds.plot()), figure_to_html(ranks.plot())]
        visuals.append(figure_to_html(watched.plot()) if watched is not None else _note("No watched tokens given."))
        data = {
            "run_id": run.run_id,
            "layer_predictions": preds.to_dict(),
            "rankings": ranks.to_dict(),
            "rankings_watch": watched.to_dict() if watched is not None else None,
        }
        return EndpointResult(visuals, data)

    # -- NMF
    def nmf(
        self, run_id: str, n_components: int = 4, from_layer: int = 0, to_layer: int = -1, skip_first: bool = True
    ) -> EndpointResult:
        """NMF factors of the run's FFN activations: highlights with sparklines and each factor's top neurons.

        skip_first leaves out the first token (the attention sink on causal models; see explain.SKIP_FIRST).
        """
        from .explain import SKIP_FIRST

        run = self.runs.get(run_id)
        k = as_int(n_components, "n_components", 1, self.config.max_components, " (this app's limit)")
        lo, hi = _layer_bounds(from_layer, to_layer)
        positions = slice(SKIP_FIRST, None) if as_bool(skip_first, "skip_first", default=True) else None
        result = run.out.run_nmf(n_components=k, from_layer=lo, to_layer=hi, positions=positions)
        visuals = [result.explore(top_n=8), figure_to_html(result.plot())]
        return EndpointResult(visuals, {"run_id": run.run_id, **result.to_dict(top_n=8)})

    def local_explainer_to_load(self, backend: Any, llm_model: Any) -> str | None:
        """The local explainer's name if a request with these choices would load it first, else None."""
        from .explain.backends import default_local_model, get_backend

        if not isinstance(backend, str) or backend.strip() != "local" or not isinstance(llm_model, str):
            return None
        name = llm_model.strip() or default_local_model()[0]
        if name not in self.models:
            return None  # refused later, with a message
        return None if getattr(get_backend(f"local:{name}"), "is_loaded", True) else name

    # -- explain
    def explain(
        self,
        run_id: str,
        n_components: int = 3,
        from_layer: int = 0,
        to_layer: int = -1,
        backend: str = "local",
        base_url: str = "",
        llm_model: str = "",
        api_key: str = "",
        score: bool = False,
        n_examples: int = 2,
        retriever: str = "bm25",
        held_out: str | Sequence[str] = "",
        skip_first: bool = True,
    ) -> EndpointResult:
        """One LLM explanation per NMF factor of the run, optionally scored on held-out texts.

        api_key is used for this request only: it goes to the backend object and nowhere else. The server
        it goes to follows `openai_target` (the operator's key never goes to a caller's base_url).
        skip_first leaves out each text's first token, as in `nmf`.
        """
        from .explain import HELD_OUT_TEXTS, SKIP_FIRST

        cfg = self.config
        run = self.runs.get(run_id)
        k = as_int(n_components, "n_components", 1, cfg.max_components, " (this app's limit)")
        layers = _layer_bounds(from_layer, to_layer)
        kind = as_choice(backend, "backend", EXPLAIN_BACKENDS, default="local")
        n_ex = as_int(n_examples, "n_examples", 0, cfg.max_examples, default=2)
        retr = as_choice(retriever, "retriever", RETRIEVERS, default="bm25")
        texts = _lines("" if held_out is None else held_out, cfg.max_held_out * 2)
        if len(texts) > cfg.max_held_out:
            raise InputError(f"at most {cfg.max_held_out} held-out texts per request, got {len(texts)}")
        for i, t in enumerate(texts, 1):
            check_prompt(get_lm(run.model), t, cfg, what=f"held-out text {i}")
        name = as_text(llm_model, "llm_model", 200).strip()
        if kind == "local" and name:
            check_model(name, self.models)
        url, key = openai_target(cfg, base_url, api_key) if kind == "openai" else (None, None)
        spec = {"kind": kind, "model": name, "base_url": url, "api_key": key, "timeout": cfg.upstream_timeout_s}
        result = _explain(
            run.model,
            _detached(run.out),
            k,
            layers,
            spec,
            score=as_bool(score, "score", default=False),
            held_out=texts or list(HELD_OUT_TEXTS[: cfg.max_held_out]),
            n_examples=n_ex,
            retriever=retr,
            max_tokens=cfg.explain_max_tokens,
            skip_first=SKIP_FIRST if as_bool(skip_first, "skip_first", default=True) else 0,
        )
        nmf = result.nmf
        tops = [nmf.top_neurons(f, 8) for f in range(nmf.n_components)]
        texts = [" ".join([e.text, *(f"(note: {n})" for n in getattr(e, "notes", []))]) for e in result.explanations]
        view = _factors_with_text(nmf, tops, texts)
        visuals = [view, _note(str(result.report), pre=True) if result.report else _note("Not scored.")]
        return EndpointResult(visuals, {"run_id": run.run_id, **result.to_dict()})


def _factors_with_text(nmf: Any, tops: list, texts: list[str]) -> Visual:
    from .render import factors_view

    return factors_view(nmf.tokens, nmf.factors, top_neurons=tops, explanations=texts)


def _items(value: Any, name: str, max_items: int, split: Callable[[str], list[str]]) -> list[str]:
    """Non-empty text items of a text box (split) or of a list, bounded in number and length before use."""
    if isinstance(value, str):
        items = split(as_text(value, name, max_items * 4096))
    elif isinstance(value, list | tuple):
        items = [as_text(v, f"each of {name}", 4096) for v in value[: max_items + 1]]
    else:
        raise InputError(f"{name} must be text or a list of texts, got {shown(value)}")
    return [t for t in items if t.strip()]


def _watch_list(watch: str | Sequence[str], limit: int) -> list[str]:
    """Watched tokens from a list or a comma-separated string (spaces kept: ' is, are' -> [' is', ' are'])."""
    items = _items(watch, "watch", limit * 2, lambda text: text.split(","))
    if len(items) > limit:
        raise InputError(f"at most {limit} watched tokens, got {len(items)}")
    return items


def _lines(text: str | Sequence[str], max_items: int = 64) -> list[str]:
    """Non-empty lines of a text box (or the items of a list)."""
    return _items(text, "held_out", max_items, str.splitlines)


def _note(text: str, pre: bool = False) -> Visual:
    """A small text panel in the same container as the other visuals."""
    body = f"<pre>{html.escape(text)}</pre>" if pre else f"<p>{html.escape(text)}</p>"
    return Visual(f'<div class="ecco-note">{body}</div>', title="note", kind="note")


__all__ = [
    "ATTRIBUTION_METHODS",
    "CALLER_BASE_URL_MODES",
    "DEFAULT_MODEL",
    "HUB_MODELS",
    "BusyError",
    "EndpointResult",
    "Jobs",
    "Run",
    "RunCache",
    "Server",
    "ServingConfig",
    "allowed_models",
    "caller_url_mode",
    "check_caller_url",
    "check_model",
    "get_lm",
    "gpu",
    "is_loaded",
    "load_app",
    "on_space",
    "openai_target",
    "preload",
    "release_memory",
    "shown",
]
