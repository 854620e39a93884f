"""Serving the SDK to many users at once: limits, a model allow-list, a run cache, and ZeroGPU support.

Everything the Gradio app (space/app.py) does besides laying out widgets lives here, so the app only
wires these functions to components. Each endpoint function validates its inputs against a
`ServingConfig` (raising `InputError` with a message that names the limit), composes SDK calls and
returns an `EndpointResult`: the visuals to show and a JSON-serializable dict for API clients.

Runs: `generate` stores its `OutputSeq` in a `RunCache` under a random run id; the other endpoints take
that id, so tabs work on one generation without recomputing it. A missing or expired id is an error
that says to generate again (nothing is silently recomputed). Run ids are unguessable, and each call
captures into its own recording (see ecco_sdk.capture), so parallel users never see each other's data.

ZeroGPU: the heavy steps that touch model weights (`_generate`, `_attribute`, `_lens`, `_explain`) are
wrapped by `gpu`, i.e. `spaces.GPU` when the `spaces` package is importable. Such a function may run in
another process, so it takes and returns plain data (runs detached from their `LM`) and all cache
updates happen here in the calling process.
"""

from __future__ import annotations

import dataclasses
import html
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from .checks import check_choice
from .errors import InputError
from .lm import LM, from_pretrained
from .models import EMBEDDED
from .output import OutputSeq
from .render import Visual, figure_to_html

F = TypeVar("F", bound=Callable[..., Any])

#: Hub models offered only when the app runs on a Hugging Face Space (where the hub is reachable).
HUB_MODELS: tuple[str, ...] = ("HuggingFaceTB/SmolLM2-135M-Instruct", "openai-community/gpt2")
DEFAULT_MODEL = "smollm2-135m-instruct"
ATTRIBUTION_METHODS: tuple[str, ...] = ("ig", "saliency", "grad_x_input", "ablation")
RETRIEVERS: tuple[str, ...] = ("bm25", "dense", "hybrid")
EXPLAIN_BACKENDS: tuple[str, ...] = ("local", "openai")


@dataclass(frozen=True)
class ServingConfig:
    """Per-request limits and cache sizes; `from_env` reads overrides such as ECCO_APP_MAX_NEW_TOKENS=32."""

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
    run_ttl_s: float = 3600.0
    concurrency_limit: int = 2

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InputError(f"ServingConfig.{f.name} must be a positive number, got {value!r}")

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
                kw[f.name] = float(raw) if f.type == "float" else int(raw)
            except ValueError as err:
                raise InputError(f"ECCO_APP_{f.name.upper()} must be a number, got {raw!r}") from err
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The limits as plain data (shown in the app and returned to API clients)."""
        return dataclasses.asdict(self)


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
    """The embedded causal models always; the hub models too on a Space. Nothing else is ever loaded."""
    names = [m.name for m in EMBEDDED.values() if m.kind == "causal"]
    if on_space(env):
        names += list(HUB_MODELS)
    return names


def check_model(name: Any, allowed: Sequence[str]) -> str:
    """The model name if it is on the allow-list, else an InputError naming the allowed ones."""
    if not isinstance(name, str) or name.strip() not in allowed:
        raise InputError(f"model {name!r} is not served by this app; choose one of: {', '.join(allowed)}")
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
    """One generation kept for the other tabs: its model, prompt, output, and a lock for in-place updates."""

    run_id: str
    model: str
    prompt: str
    out: OutputSeq
    created: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class RunCache:
    """A small thread-safe LRU of runs with an age limit, keyed by random run ids."""

    def __init__(self, capacity: int = 32, ttl_s: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        if capacity < 1 or ttl_s <= 0:
            raise InputError("RunCache needs capacity >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, model: str, prompt: str, out: OutputSeq) -> Run:
        """Store a run under a fresh id, evicting the least recently used beyond capacity."""
        run = Run(secrets.token_hex(8), model, prompt, out, self._clock())
        with self._lock:
            self._runs[run.run_id] = run
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)
        return run

    def get(self, run_id: Any) -> Run:
        """The run with this id (marked recently used), or an InputError saying to generate again."""
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
                f"run id {rid!r} is unknown or expired (this app keeps the last {self.capacity} runs for "
                f"{self.ttl_s / 60:.0f} minutes); generate again to get a new run_id"
            )
        return run

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._runs


# ----- validation -------------------------------------------------------------------------------------------


def as_int(value: Any, name: str, lo: int, hi: int, hint: str = "") -> int:
    """An integer in [lo, hi] (integral floats from number widgets accepted), else a message with the limit."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{name} must be an integer from {lo} to {hi}{hint}, got {value!r}")
    return value


def as_float(value: Any, name: str, lo: float, hi: float) -> float:
    """A number in [lo, hi], else a message with the range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InputError(f"{name} must be a number from {lo} to {hi}, got {value!r}")
    return float(value)


def check_prompt(lm: LM, prompt: Any, cfg: ServingConfig) -> int:
    """Number of prompt tokens, after checking the prompt is non-empty and within max_input_tokens."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty; type some text to continue")
    n = int(lm.encode(prompt).shape[1])
    if n > cfg.max_input_tokens:
        raise InputError(
            f"the prompt is {n} tokens but this app accepts at most {cfg.max_input_tokens} input tokens; shorten it"
        )
    return n


def _layer_bounds(from_layer: Any, to_layer: Any) -> tuple[int | None, int | None]:
    """API layer range: integers; to_layer -1 means 'through the last layer' (the SDK checks the bounds)."""
    lo = as_int(from_layer, "from_layer", -(10**6), 10**6)
    hi = as_int(to_layer, "to_layer", -(10**6), 10**6)
    return lo, (None if hi == -1 else hi)


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
def _attribute(model: str, out: OutputSeq, method: str, n_steps: int) -> Any:
    """One attribution method over every generated token of a detached run."""
    from .attribution import attribute_output

    lm = get_lm(model)
    return attribute_output(lm, out.attach(lm), [method], n_steps=n_steps)[method]


@gpu
def _lens(model: str, out: OutputSeq, position: int | None, watch: list[str], topk: int) -> tuple[Any, Any, Any]:
    """Logit-lens analyses of a detached run: layer predictions, rankings, and rankings of watched tokens."""
    out.attach(get_lm(model))
    preds = out.layer_predictions(position=position, topk=topk)
    ranks = out.rankings()
    watched = out.rankings_watch(watch, position=position) if watch else None
    return preds, ranks, watched


@gpu
def _explain(model: str, out: OutputSeq, n_components: int, layers: tuple, backend: dict[str, Any], **kw: Any) -> Any:
    """Factorize, explain each factor and (optionally) score, on a detached run.

    `backend` is plain data ({"kind", "model", "base_url", "api_key"}); the OpenAI backend object (whose
    key is a non-picklable Secret) is built here, used for this call, and dropped.
    """
    from .explain import OpenAIBackend, explain_output

    if backend["kind"] == "local":
        llm: Any = "local" + (f":{backend['model']}" if backend["model"] else "")
    else:
        llm = OpenAIBackend(backend["model"] or None, base_url=backend["base_url"] or None, api_key=backend["api_key"])
    out.attach(get_lm(model))
    return explain_output(out, n_components, from_layer=layers[0], to_layer=layers[1], backend=llm, **kw)


class Server:
    """The app's state: limits, allowed models and the run cache; one method per API endpoint."""

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
        self.runs = RunCache(self.config.run_cache_size, self.config.run_ttl_s)

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
    ) -> EndpointResult:
        """Validate, generate, keep the run; data is OutputSeq.to_dict() plus run_id and the limits."""
        cfg = self.config
        model = check_model(model, self.models)
        n_new = as_int(max_new_tokens, "max_new_tokens", 1, cfg.max_new_tokens, " (this app's limit)")
        sampling = {
            "do_sample": bool(do_sample),
            "temperature": as_float(temperature, "temperature", 0.01, 5.0),
            "top_k": as_int(top_k, "top_k", 0, 1000, " (0 = off)") or None,
            "top_p": as_float(top_p, "top_p", 0.01, 1.0),
            "seed": as_int(seed, "seed", -1, 2**31 - 1, " (-1 = random)"),
        }
        sampling["top_p"] = None if sampling["top_p"] >= 1.0 else sampling["top_p"]
        sampling["seed"] = None if sampling["seed"] == -1 else sampling["seed"]
        check_prompt(get_lm(model), prompt, cfg)
        out = _generate(model, prompt, n_new, sampling)
        run = self.runs.put(model, prompt, out.attach(get_lm(model)))
        data = {"run_id": run.run_id, "model": model, "output_text": out.output_text, **out.to_dict()}
        return EndpointResult([out.view()], data)

    # -- saliency
    def saliency(
        self, run_id: str, method: str = "ig", style: str = "minimal", target: int = -1, n_steps: int | None = None
    ) -> EndpointResult:
        """Input attribution of the run's generated tokens (computed once per method and step count)."""
        from .attribution import canonical_method

        cfg = self.config
        run = self.runs.get(run_id)
        method = canonical_method(check_choice(method, "method", ATTRIBUTION_METHODS))
        style = check_choice(style, "style", ("minimal", "detailed"))
        steps = cfg.default_ig_steps if n_steps is None else as_int(n_steps, "n_steps", 1, cfg.max_ig_steps)
        n_gen = run.out.n_generated
        t = as_int(target, "target", -1, n_gen - 1, f" (index of a generated token, 0..{n_gen - 1}; -1 = last)")
        with run.lock:  # one attribution per method at a time on a shared run
            have = run.out.attributions.get(method)
            if have is None or (method == "ig" and have.n_steps != steps):
                run.out.attributions[method] = _attribute(run.model, _detached(run.out), method, steps)
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
        return EndpointResult([view], data)

    # -- logit lens
    def rankings(
        self, run_id: str, watch: str | Sequence[str] = "", position: int = -1, topk: int = 5
    ) -> EndpointResult:
        """Layer predictions at a position, the rankings heatmap, and rankings of watched tokens."""
        run = self.runs.get(run_id)
        out = run.out
        n = len(out.tokens)
        pos = as_int(position, "position", -1, n, " (index into the run's tokens; -1 = first generated)")
        topk = as_int(topk, "topk", 1, 10)
        items = _watch_list(watch, self.config.max_watch_tokens)
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
        positions = slice(SKIP_FIRST, None) if skip_first else None
        result = run.out.run_nmf(n_components=k, from_layer=lo, to_layer=hi, positions=positions)
        visuals = [result.explore(top_n=8), figure_to_html(result.plot())]
        return EndpointResult(visuals, {"run_id": run.run_id, **result.to_dict(top_n=8)})

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

        api_key is used for this request only: it goes to the backend object and nowhere else. skip_first
        leaves out each text's first token, as in `nmf`.
        """
        from .explain import HELD_OUT_TEXTS, SKIP_FIRST

        cfg = self.config
        run = self.runs.get(run_id)
        k = as_int(n_components, "n_components", 1, cfg.max_components, " (this app's limit)")
        layers = _layer_bounds(from_layer, to_layer)
        kind = check_choice(backend, "backend", EXPLAIN_BACKENDS)
        n_ex = as_int(n_examples, "n_examples", 0, cfg.max_examples)
        retr = check_choice(retriever, "retriever", RETRIEVERS)
        texts = _lines(held_out)
        if len(texts) > cfg.max_held_out:
            raise InputError(f"at most {cfg.max_held_out} held-out texts per request, got {len(texts)}")
        for t in texts:
            check_prompt(get_lm(run.model), t, cfg)
        name = llm_model.strip() if isinstance(llm_model, str) else ""
        if kind == "local" and name:
            check_model(name, self.models)
        spec = {
            "kind": kind,
            "model": name,
            "base_url": base_url.strip() if isinstance(base_url, str) else "",
            "api_key": (api_key.strip() or None) if kind == "openai" and isinstance(api_key, str) else None,
        }
        result = _explain(
            run.model,
            _detached(run.out),
            k,
            layers,
            spec,
            score=bool(score),
            held_out=texts or list(HELD_OUT_TEXTS[: cfg.max_held_out]),
            n_examples=n_ex,
            retriever=retr,
            max_tokens=cfg.explain_max_tokens,
            skip_first=SKIP_FIRST if skip_first else 0,
        )
        nmf = result.nmf
        tops = [nmf.top_neurons(f, 8) for f in range(nmf.n_components)]
        view = _factors_with_text(nmf, tops, [e.text for e in result.explanations])
        visuals = [view, _note(str(result.report), pre=True) if result.report else _note("Not scored.")]
        return EndpointResult(visuals, {"run_id": run.run_id, **result.to_dict()})


def _factors_with_text(nmf: Any, tops: list, texts: list[str]) -> Visual:
    from .render import factors_view

    return factors_view(nmf.tokens, nmf.factors, top_neurons=tops, explanations=texts)


def _watch_list(watch: str | Sequence[str], limit: int) -> list[str]:
    """Watched tokens from a list or a comma-separated string (spaces kept: ' is, are' -> [' is', ' are'])."""
    items = watch.split(",") if isinstance(watch, str) else list(watch)
    items = [str(w) for w in items if str(w).strip()]
    if len(items) > limit:
        raise InputError(f"at most {limit} watched tokens, got {len(items)}")
    return items


def _lines(text: str | Sequence[str]) -> list[str]:
    """Non-empty lines of a text box (or the items of a list)."""
    items = text.splitlines() if isinstance(text, str) else list(text)
    return [str(t) for t in items if str(t).strip()]


def _note(text: str, pre: bool = False) -> Visual:
    """A small text panel in the same container as the other visuals."""
    body = f"<pre>{html.escape(text)}</pre>" if pre else f"<p>{html.escape(text)}</p>"
    return Visual(f'<div class="ecco-note">{body}</div>', title="note", kind="note")


__all__ = [
    "ATTRIBUTION_METHODS",
    "DEFAULT_MODEL",
    "HUB_MODELS",
    "EndpointResult",
    "Run",
    "RunCache",
    "Server",
    "ServingConfig",
    "allowed_models",
    "check_model",
    "get_lm",
    "gpu",
    "is_loaded",
    "load_app",
    "on_space",
    "preload",
]
