"""The app's endpoints: one `Server` method per tab, each checking its inputs and composing SDK calls.

Each endpoint method validates its inputs against a `ServingConfig` (raising `InputError` with a message that
names the limit), composes SDK calls and returns an `EndpointResult`: the visuals to show and a
JSON-serializable dict for API clients. `generate` keeps its run in the `RunCache`; the other endpoints take
its run id. The steps that touch model weights run through `ecco_sdk.app.zerogpu` on detached runs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..attribution import METHODS as ATTRIBUTION_METHODS
from ..attribution import canonical_method, usable_methods
from ..errors import InputError
from ..explain import HELD_OUT_TEXTS, SKIP_FIRST
from ..explain.backends import default_local_model, get_backend
from ..lm import LM
from ..render import Visual, factors_view, figure_to_html
from ..render.layers import layer_attribution_view
from . import zerogpu
from .config import ServingConfig
from .inputs import as_bool, as_choice, as_float, as_int, as_text, layer_bounds, shown, text_lines, watch_list
from .jobs import Jobs
from .lms import allowed_models, check_model, get_lm, is_loaded
from .runs import RunCache
from .secret_policy import openai_target

RETRIEVERS: tuple[str, ...] = ("bm25", "dense", "hybrid")
EXPLAIN_BACKENDS: tuple[str, ...] = ("local", "openai")
#: How the IG step count may be given.
AUTO_HINT = ' (or "auto": as many as IG needs to converge, up to this limit)'


@dataclass
class EndpointResult:
    """What an endpoint shows (visuals, in the app's output order) and returns to API clients (data).

    Args:
        visuals: the views, in the order of the app's output widgets.
        data: the JSON-serializable result for API clients.
    """

    visuals: list[Visual]
    data: dict[str, Any]

    def html(self) -> list[str]:
        """Script-free HTML of each visual, for gr.HTML.

        Returns:
            One HTML string per visual.
        """
        return [v.static_html for v in self.visuals]


def check_prompt(lm: LM, prompt: Any, cfg: ServingConfig, what: str = "the prompt") -> int:
    """Number of tokens of a prompt (or held-out text: `what`), after checking it is non-empty and within limits.

    Args:
        lm: the model whose tokenizer counts the tokens.
        prompt: what the caller sent.
        cfg: the app's limits (`max_input_tokens`).
        what: the text's name in messages.

    Returns:
        The number of tokens.

    Raises:
        InputError: the text is not text, empty, or has too many tokens.
    """
    text = as_text(prompt, what, cfg.max_input_tokens * 64)
    if not text.strip():
        raise InputError(f"{what} is empty; type some text")
    n = int(lm.encode(text).shape[1])
    if n > cfg.max_input_tokens:
        raise InputError(
            f"{what} is {n} tokens but this app accepts at most {cfg.max_input_tokens} input tokens; shorten it"
        )
    return n


class Server:
    """The app's state: limits, allowed models, the run cache and the job runner; one method per API endpoint.

    Endpoint methods are plain blocking calls; the app runs them through `self.jobs` (worker threads,
    bounded queues, time caps, cancellation). `owner` is the caller's session, which shares the run cache.

    Args:
        config: the limits (default: `ServingConfig.from_env()`).
        models: the models to serve, each on the allow-list (default: all that `allowed_models` allows).

    Raises:
        InputError: a model is not on the allow-list, or no model is left.
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
        """Validate, generate, keep the run; data is OutputSeq.to_dict() plus run_id and the limits.

        Args:
            prompt: text to continue.
            model: one of `self.models`.
            max_new_tokens: tokens to generate (1 to the limit).
            do_sample: sample instead of greedy decoding.
            temperature: sampling temperature.
            top_k: keep the k most likely tokens when sampling (0: off).
            top_p: nucleus sampling threshold (1: off).
            seed: sampling seed (-1: random).
            owner: the caller's session, which owns the run in the cache.

        Returns:
            The candidates view, and the run as data with its `run_id`.

        Raises:
            InputError: an input is refused, with a message naming it.
        """
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
        out = zerogpu.generate(model, prompt, n_new, sampling)
        run = self.runs.put(model, prompt, out.attach(get_lm(model)), owner)
        data = {"run_id": run.run_id, "model": model, "output_text": out.output_text, **out.to_dict()}
        return EndpointResult([out.view()], data)

    def attribution_methods(self, model: str) -> tuple[str, ...]:
        """The attribution methods that can run on a served model (all of them until it is loaded).

        Args:
            model: a served model's name.

        Returns:
            Method names.
        """
        return usable_methods(get_lm(model)) if is_loaded(model) else ATTRIBUTION_METHODS

    # -- saliency
    def saliency(
        self, run_id: str, method: str = "ig", style: str = "minimal", target: int = -1, n_steps: int | None = None
    ) -> EndpointResult:
        """Input attribution of the run's generated tokens (computed once per method and step count).

        A cancelled or overdue computation raises before anything is stored, so the run keeps no partial result.

        Args:
            run_id: the id returned by `generate`.
            method: an attribution method the run's model supports.
            style: "minimal" (highlights) or "detailed" (numbers and bars).
            target: which generated token the view shows, 0-based (-1: the last).
            n_steps: IG steps (None: the config's default), or "auto".

        Returns:
            The highlighted text, and the scores of every generated token as data.

        Raises:
            InputError: an input is refused, with a message naming it.
        """
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
                run.out.attributions[method] = zerogpu.attribute(
                    run.model, zerogpu.detached(run.out), method, steps, cfg.max_ig_steps
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
        """How much each position's state at each layer matters to one generated token (gradient x activation).

        Args:
            run_id: the id returned by `generate`.
            target: which generated token, 0-based (-1: the last).

        Returns:
            The layers x positions heatmap, and its scores as data (NaN as None).

        Raises:
            InputError: an input is refused, with a message naming it.
        """
        run = self.runs.get(run_id)
        n_gen = run.out.n_generated
        hint = f" (index of a generated token, 0..{n_gen - 1}; -1 = last)"
        t = as_int(target, "target", -1, n_gen - 1, hint, default=-1)
        la = zerogpu.layer_view(run.model, zerogpu.detached(run.out), t)
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
        """Layer predictions at a position, the rankings heatmap, and rankings of watched tokens.

        Args:
            run_id: the id returned by `generate`.
            watch: tokens to follow, comma-separated or a list (leading spaces kept).
            position: index into the run's tokens of the predicted token (-1: the first generated one).
            topk: predictions per layer (1-10).

        Returns:
            Three figures (predictions, rankings, watched rankings or a note), and all three as data.

        Raises:
            InputError: an input is refused, with a message naming it.
        """
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
        items = watch_list("" if watch is None else watch, self.config.max_watch_tokens)
        preds, ranks, watched = zerogpu.lens(run.model, zerogpu.detached(out), None if pos == -1 else pos, items, topk)
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

        Args:
            run_id: the id returned by `generate`.
            n_components: factors (1 to the limit).
            from_layer: first layer, 0-based.
            to_layer: end layer, exclusive (-1: through the last).
            skip_first: leave out the first token (the attention sink on causal models; see explain.SKIP_FIRST).

        Returns:
            The factor explorer and a factor plot, and the factors with their top neurons as data.

        Raises:
            InputError: an input is refused, with a message naming it.
        """
        run = self.runs.get(run_id)
        k = as_int(n_components, "n_components", 1, self.config.max_components, " (this app's limit)")
        lo, hi = layer_bounds(from_layer, to_layer)
        positions = slice(SKIP_FIRST, None) if as_bool(skip_first, "skip_first", default=True) else None
        result = run.out.run_nmf(n_components=k, from_layer=lo, to_layer=hi, positions=positions)
        visuals = [result.explore(top_n=8), figure_to_html(result.plot())]
        return EndpointResult(visuals, {"run_id": run.run_id, **result.to_dict(top_n=8)})

    def local_explainer_to_load(self, backend: Any, llm_model: Any) -> str | None:
        """The local explainer's name if a request with these choices would load it first, else None.

        Args:
            backend: the request's backend choice.
            llm_model: the request's explainer model (empty: the default local one).

        Returns:
            The model name that would load, or None (loaded already, not local, or refused later).
        """
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
        Args:
            run_id: the id returned by `generate`.
            n_components: factors (1 to the limit).
            from_layer: first layer, 0-based.
            to_layer: end layer, exclusive (-1: through the last).
            backend: "local" or "openai".
            base_url: the caller's OpenAI-compatible server (empty: the app's).
            llm_model: the explainer model (empty: the backend's default).
            api_key: the caller's key, for this request only.
            score: score each explanation on held-out texts.
            n_examples: few-shot examples per prompt.
            retriever: "bm25", "dense" or "hybrid".
            held_out: held-out texts, one per line or a list (empty: built-in texts).
            skip_first: leave out each text's first token, as in `nmf`.

        Returns:
            The factors with their explanations and the score table, and everything as data.

        Raises:
            InputError: an input is refused, with a message naming it.
            ConfigurationError: the openai backend has no key.
        """
        cfg = self.config
        run = self.runs.get(run_id)
        k = as_int(n_components, "n_components", 1, cfg.max_components, " (this app's limit)")
        layers = layer_bounds(from_layer, to_layer)
        kind = as_choice(backend, "backend", EXPLAIN_BACKENDS, default="local")
        n_ex = as_int(n_examples, "n_examples", 0, cfg.max_examples, default=2)
        retr = as_choice(retriever, "retriever", RETRIEVERS, default="bm25")
        texts = text_lines("" if held_out is None else held_out, cfg.max_held_out * 2)
        if len(texts) > cfg.max_held_out:
            raise InputError(f"at most {cfg.max_held_out} held-out texts per request, got {len(texts)}")
        for i, t in enumerate(texts, 1):
            check_prompt(get_lm(run.model), t, cfg, what=f"held-out text {i}")
        name = as_text(llm_model, "llm_model", 200).strip()
        if kind == "local" and name:
            check_model(name, self.models)
        url, key = openai_target(cfg, base_url, api_key) if kind == "openai" else (None, None)
        spec = {"kind": kind, "model": name, "base_url": url, "api_key": key, "timeout": cfg.upstream_timeout_s}
        result = zerogpu.explain(
            run.model,
            zerogpu.detached(run.out),
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
    return factors_view(nmf.tokens, nmf.factors, top_neurons=tops, explanations=texts)


def _note(text: str, pre: bool = False) -> Visual:
    """A small text panel in the same container as the other visuals."""
    body = f"<pre>{html.escape(text)}</pre>" if pre else f"<p>{html.escape(text)}</p>"
    return Visual(f'<div class="ecco-note">{body}</div>', title="note", kind="note")
