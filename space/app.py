"""ecco_sdk's Gradio app: generation, saliency, layer rankings, NMF factors and their explanations.

This file only lays out widgets and wires them to `ecco_sdk.app` (limits, allow-list, run cache,
ZeroGPU); the analyses are SDK calls. Every tab is also an API endpoint for `gradio_client`:

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    html, run = c.predict("The capital of France is", "smollm2-135m-instruct", 8, api_name="/generate")
    html, sal = c.predict(run["run_id"], "ig", "minimal", -1, 16, api_name="/saliency")

Start it with `make app` or `ecco-sdk app --host 127.0.0.1 --port 7860`.
"""

from __future__ import annotations

import argparse
import functools
import html
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's run history would save every request's inputs, the Explain tab's API key included, in the browser.
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

import gradio as gr
from gradio.events import Dependency

from ecco_sdk import EccoError
from ecco_sdk.app import ATTRIBUTION_METHODS, RETRIEVERS, Server, ServingConfig, is_loaded, preload

EXAMPLES = [
    ["The capital of France is", 8],
    ["Heathrow airport is located in the city of", 8],
    ["The keys to the cabinet", 6],
    ["1, 2, 3, 4, 5,", 10],
    ["def add(a, b):\n    return", 8],
]

#: Event options of every endpoint: raw inputs (serving checks and coerces each by name, so a number sent as
#: text or a null gets a message naming the field instead of a failed Gradio conversion), and no Gradio-side
#: concurrency limit (server.jobs bounds running and waiting work and refuses the rest as "busy").
JOB_EVENT: dict[str, Any] = {"preprocess": False, "concurrency_limit": None}

SKIP_LABEL = "Leave out the first token (the attention sink, which would take a factor of its own)"

INTRO = (
    "# ecco_sdk: look inside a language model\n"
    "Generate text on the **Generate** tab; the other tabs analyse that same run (its id is kept below) "
    "without recomputing it."
)


#: Most characters of an error message shown to a caller (the inputs it repeats are cut to 80 already).
MESSAGE_CHARS = 600


def _message(err: Exception) -> str:
    """An SDK error as a caller sees it: bounded, and escaped (Gradio's toast renders HTML)."""
    text = str(err)
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + "..."
    return html.escape(text, quote=False)


def _job(server: Server, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run an endpoint through `server.jobs` (worker threads, bounded queue, time cap, cancellation).

    The handler Gradio sees is async: when Gradio cancels the job (a cancelled API call, the Stop button)
    the awaiting task is cancelled, which sets the work's cancel flag. ecco_sdk's errors (which say what to
    change) become gr.Error messages.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def handler(*args: Any, **kwargs: Any) -> Any:
            request = signature.bind_partial(*args, **kwargs).arguments.get("request")
            session = getattr(request, "session_hash", None) or "anonymous"
            try:
                return await server.jobs.run(name, session, functools.partial(fn, *args, **kwargs))
            except EccoError as err:
                raise gr.Error(_message(err), print_exception=False) from None

        return handler

    return wrap


class EccoBlocks(gr.Blocks):
    """Blocks whose events take missing trailing inputs as None (a raw API call may send fewer values).

    The endpoint then names each missing field ("max_new_tokens is missing") instead of Gradio's generic
    failure. It takes `gr.Blocks`'s arguments.
    """

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        """Pad a call's inputs with None up to the event's input count, in place.

        Args:
            block_fn: the event being called.
            inputs: the values the caller sent.
        """
        inputs.extend([None] * (len(block_fn.inputs) - len(inputs)))


def _target_choices(run: dict[str, Any]) -> list[tuple[str, int]]:
    """One dropdown entry per generated token of a run."""
    tokens, positions = run.get("tokens", []), run.get("generated_positions", [])
    return [("last generated token", -1)] + [(f"#{i}: {tokens[p]!r}", i) for i, p in enumerate(positions)]


def _generate_endpoint(server: Server) -> Callable[..., Any]:
    """The /generate handler: checks and runs `Server.generate` as a job of this browser session.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "generate")
    def generate(
        prompt: str,
        model: str,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = -1,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Generate text after a prompt, recording each step's candidate tokens.

        Args:
            prompt: text to continue (at most the app's max input tokens).
            model: one of the allowed model names.
            max_new_tokens: tokens to generate (1 to the app's limit).
            do_sample: sample instead of greedy decoding.
            temperature: sampling temperature (> 0).
            top_k: keep only the k most likely tokens when sampling (0 = off).
            top_p: nucleus sampling threshold (1 = off).
            seed: sampling seed (-1 = random).
        Returns:
            The candidates view (HTML) and the run as JSON, with `run_id` for the other endpoints.
        """
        if model in server.models and not is_loaded(model):
            gr.Info(f"Loading {model} (first use in this process; this takes a little while)...")
            progress(0, desc=f"Loading model {model}...")
        owner = getattr(request, "session_hash", None) or ""
        res = server.generate(prompt, model, max_new_tokens, do_sample, temperature, top_k, top_p, seed, owner)
        return res.html()[0], res.data

    return generate


def _saliency_endpoint(server: Server) -> Callable[..., Any]:
    """The /saliency handler: `Server.saliency` as a job.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "saliency")
    def saliency(
        run_id: str,
        method: str = "ig",
        style: str = "minimal",
        target: int = -1,
        n_steps: int | str = server.config.default_ig_steps,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Input attribution (saliency) of each generated token over the tokens before it.

        Args:
            run_id: the run_id returned by /generate.
            method: an attribution method the run's model supports (ig, saliency, grad_x_input, ablation, ...).
            style: minimal (highlights) or detailed (numbers and bars).
            target: which generated token to show, 0-based (-1 = last); the JSON holds all of them.
            n_steps: integration steps for ig (1 to the app's limit), or "auto": as many as IG needs to converge
                within that limit (the JSON then holds the steps used and the error estimate).
        Returns:
            The highlighted text (HTML) and the attribution scores as JSON.
        """
        progress(0, desc=f"Computing {method} attribution...")
        res = server.saliency(run_id, method, style, target, n_steps)
        return "".join(res.html()), res.data

    return saliency


def _layers_endpoint(server: Server) -> Callable[..., Any]:
    """The /layers handler: `Server.layers` as a job.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "layers")
    def layers(run_id: str, target: int = -1, request: gr.Request = None) -> tuple[str, dict]:
        """Layer view: how much each position's state at each layer matters to one generated token.

        Args:
            run_id: the run_id returned by /generate.
            target: which generated token, 0-based (-1 = last).
        Returns:
            The layers x positions heatmap (HTML image) and its scores as JSON (gradient x activation, summed).
        """
        res = server.layers(run_id, target)
        return res.html()[0], res.data

    return layers


def _rankings_endpoint(server: Server) -> Callable[..., Any]:
    """The /rankings handler: `Server.rankings` as a job.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "rankings")
    def rankings(
        run_id: str, watch: str = "", position: int = -1, topk: int = 5, request: gr.Request = None
    ) -> tuple[str, str, str, dict]:
        """The logit lens: what each layer would predict, and how it ranks tokens.

        Args:
            run_id: the run_id returned by /generate.
            watch: tokens to follow through the layers, comma-separated with their leading spaces (e.g. " is, are").
            position: index into the run's tokens of the predicted token (-1 = first generated token).
            topk: predictions shown per layer (1-10).
        Returns:
            Layer predictions, rankings and watched-token rankings (HTML images) and all three as JSON.
        """
        res = server.rankings(run_id, watch, position, topk)
        return (*res.html(), res.data)

    return rankings


def _nmf_endpoint(server: Server) -> Callable[..., Any]:
    """The /nmf handler: `Server.nmf` as a job.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "nmf")
    def nmf(
        run_id: str,
        n_components: int = 4,
        from_layer: int = 0,
        to_layer: int = -1,
        skip_first: bool = True,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str, dict]:
        """Groups of FFN neurons that fire together (NMF factors) and where in the text they fire.

        Args:
            run_id: the run_id returned by /generate.
            n_components: number of factors (1 to the app's limit).
            from_layer: first layer (0-based).
            to_layer: end layer, exclusive (-1 = through the last layer).
            skip_first: leave out the first token (the attention sink, which otherwise takes a factor).
        Returns:
            The factor explorer (HTML), a factor plot (HTML image) and the factors with top neurons as JSON.
        """
        progress(0, desc="Factorizing neuron activations...")
        res = server.nmf(run_id, n_components, from_layer, to_layer, skip_first)
        return (*res.html(), res.data)

    return nmf


def _explain_endpoint(server: Server) -> Callable[..., Any]:
    """The /explain handler: `Server.explain` as a job, saying first when the local explainer must load.

    Args:
        server: the app's server.

    Returns:
        The async handler Gradio calls.
    """

    @_job(server, "explain")
    def explain(
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
        held_out: str = "",
        skip_first: bool = True,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str, dict]:
        """An LLM-written explanation of each NMF factor of the run, with scores when asked.

        Args:
            run_id: the run_id returned by /generate.
            n_components: number of factors (1 to the app's limit).
            from_layer: first layer (0-based).
            to_layer: end layer, exclusive (-1 = through the last layer).
            backend: local (the embedded model explains) or openai (any OpenAI-compatible server).
            base_url: your own OpenAI-compatible server URL (empty = the app's server); allowed only where the
                operator allows it, and it only ever gets the key you type here.
            llm_model: explainer model name (empty = the backend's default).
            api_key: your own key, used for this request only and never stored (empty = the app's own key for
                the app's server, if the operator configured one).
            score: score each explanation on held-out texts (slow on CPU).
            n_examples: few-shot examples per prompt.
            retriever: how examples are chosen: bm25, dense or hybrid.
            held_out: held-out texts for scoring, one per line (empty = built-in texts).
            skip_first: leave out each text's first token (the attention sink), as in /nmf.
        Returns:
            Factors with their explanations (HTML), the score table (HTML) and everything as JSON.
        """
        pending = server.local_explainer_to_load(backend, llm_model)
        if pending:
            gr.Info(f"Loading the local explainer {pending} (first use only; this takes a while)...")
        progress(0, desc="Explaining factors (the LLM writes one explanation per factor)...")
        res = server.explain(
            run_id, n_components, from_layer, to_layer, backend, base_url, llm_model, api_key, score,
            n_examples, retriever, held_out, skip_first,
        )  # fmt: skip
        return (*res.html(), res.data)

    return explain


def _status_line(server: Server) -> Callable[[], str]:
    """The status line's handler, run on page load and after each generation.

    Args:
        server: the app's server.

    Returns:
        A function giving one Markdown line: each model's state, the limits and the run cache's promise.
    """
    cfg = server.config

    def status() -> str:
        """Which models are in memory, so users know whether the first request will wait for a load."""
        parts = [f"`{m}` {'ready' if is_loaded(m) else 'loads on first use'}" for m in server.models]
        limits = f"{cfg.max_input_tokens} input / {cfg.max_new_tokens} new tokens, {cfg.max_request_s:g} s per request"
        return "Models: " + ", ".join(parts) + f" · limits: {limits} · {server.runs.describe()}"

    return status


def _run_bar() -> tuple[gr.Markdown, gr.Textbox, gr.Button]:
    """The intro, the status line, and the run id box with the Stop button, above the tabs.

    Returns:
        (status line, run id box, Stop button).
    """
    gr.Markdown(INTRO)
    status_md = gr.Markdown("Models: checking...")
    with gr.Row():
        run_id = gr.Textbox(label="Run id (filled by Generate; used by the other tabs)", max_lines=1, scale=4)
        stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop-btn")
    return status_md, run_id, stop_btn


def _generate_tab(server: Server) -> tuple[Dependency, gr.JSON]:
    """The Generate tab: prompt, model and sampling options, wired to /generate.

    Args:
        server: the app's server.

    Returns:
        The /generate event and the run's JSON widget (the other tabs follow it).
    """
    cfg = server.config
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", lines=2, value=EXAMPLES[0][0], scale=3)
            model = gr.Dropdown(server.models, value=server.models[0], label="Model", scale=1, allow_custom_value=True)
        n_new = gr.Number(8, precision=0, label=f"Tokens to generate (1-{cfg.max_new_tokens})")
        with gr.Accordion("Sampling", open=False):
            do_sample = gr.Checkbox(False, label="Sample (off = greedy)")
            temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
            top_k = gr.Number(0, precision=0, label="top-k (0 = off)")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (1 = off)")
            seed = gr.Number(-1, precision=0, label="Seed (-1 = random)")
        gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
        gr.Examples(EXAMPLES, inputs=[prompt, n_new], label="Example prompts")
        gen_html = gr.HTML(label="candidates", elem_id="generate-out")
        gen_json = gr.JSON(label="Run (JSON)", open=False)
    inputs = [prompt, model, n_new, do_sample, temperature, top_k, top_p, seed]
    event = gen_btn.click(_generate_endpoint(server), inputs, [gen_html, gen_json], api_name="generate", **JOB_EVENT)
    return event, gen_json


def _saliency_tab(server: Server, run_id: gr.Textbox) -> tuple[list[Dependency], gr.Dropdown, gr.Dropdown]:
    """The Saliency tab: attribution method, view, output token and IG steps, wired to /saliency; and the layer view.

    Args:
        server: the app's server.
        run_id: the shared run id box.

    Returns:
        The /saliency and /layers events, the method dropdown and the output-token dropdown (a new run
        refills both).
    """
    cfg = server.config
    with gr.Tab("Saliency", id="saliency"):
        with gr.Row():
            method = gr.Dropdown(list(ATTRIBUTION_METHODS), value="ig", label="Attribution method")
            style = gr.Radio(["minimal", "detailed"], value="minimal", label="View")
            target = gr.Dropdown(_target_choices({}), value=-1, label="Output token", allow_custom_value=True)
            n_steps = gr.Dropdown(
                ["auto", *(str(n) for n in (8, 16, 32, 64) if n <= cfg.max_ig_steps)],
                value=str(cfg.default_ig_steps),
                label=f"IG steps (1-{cfg.max_ig_steps}, or auto)",
                allow_custom_value=True,
            )
        sal_btn = gr.Button("Compute saliency", variant="primary", elem_id="saliency-btn")
        sal_html = gr.HTML(label="saliency", elem_id="saliency-out")
        sal_json = gr.JSON(label="Attribution (JSON)", open=False)
        inputs = [run_id, method, style, target, n_steps]
        saliency = _saliency_endpoint(server)
        sal_ev = sal_btn.click(saliency, inputs, [sal_html, sal_json], api_name="saliency", **JOB_EVENT)
        layer_ev = _layer_view(server, run_id, target)
    return [sal_ev, layer_ev], method, target


def _layer_view(server: Server, run_id: gr.Textbox, target: gr.Dropdown) -> Dependency:
    """The layer view under the saliency view (same output token), wired to /layers.

    Args:
        server: the app's server.
        run_id: the shared run id box.
        target: the Saliency tab's output-token dropdown.

    Returns:
        The /layers event.
    """
    layer_btn = gr.Button("Layer view (each layer's share, same output token)", elem_id="layers-btn")
    layer_html = gr.HTML(label="layers", elem_id="layers-out")
    layer_json = gr.JSON(label="Layer view (JSON)", open=False)
    return layer_btn.click(
        _layers_endpoint(server), [run_id, target], [layer_html, layer_json], api_name="layers", **JOB_EVENT
    )


def _rankings_tab(server: Server, run_id: gr.Textbox) -> Dependency:
    """The Layer rankings tab: watched tokens, position and predictions per layer, wired to /rankings.

    Args:
        server: the app's server.
        run_id: the shared run id box.

    Returns:
        The /rankings event.
    """
    with gr.Tab("Layer rankings", id="rankings"):
        with gr.Row():
            watch = gr.Textbox(label="Watch tokens (comma-separated, keep leading spaces)", value=" Paris, London")
            position = gr.Number(-1, precision=0, label="Position (-1 = first generated token)")
            topk = gr.Slider(1, 10, value=5, step=1, label="Predictions per layer")
        rank_btn = gr.Button("Run the logit lens", variant="primary")
        outputs = [
            gr.HTML(label="layer_predictions"),
            gr.HTML(label="rankings"),
            gr.HTML(label="rankings_watch"),
            gr.JSON(label="Rankings (JSON)", open=False),
        ]
    inputs = [run_id, watch, position, topk]
    return rank_btn.click(_rankings_endpoint(server), inputs, outputs, api_name="rankings", **JOB_EVENT)


def _factor_options(server: Server, n_components: int) -> list[gr.components.Component]:
    """The factor count, layer range and first-token switch that the NMF and Explain tabs share.

    Args:
        server: the app's server (its factor limit).
        n_components: the default number of factors.

    Returns:
        [factors, from layer, to layer, leave out the first token], in the endpoints' parameter order.
    """
    return [
        gr.Number(n_components, precision=0, label=f"Factors (1-{server.config.max_components})"),
        gr.Number(0, precision=0, label="From layer"),
        gr.Number(-1, precision=0, label="To layer (exclusive, -1 = last)"),
        gr.Checkbox(True, label=SKIP_LABEL),
    ]


def _nmf_tab(server: Server, run_id: gr.Textbox) -> Dependency:
    """The NMF tab: factors, layer range and the first-token switch, wired to /nmf.

    Args:
        server: the app's server.
        run_id: the shared run id box.

    Returns:
        The /nmf event.
    """
    with gr.Tab("NMF", id="nmf"):
        with gr.Row():
            options = _factor_options(server, 4)
        nmf_btn = gr.Button("Find factors", variant="primary")
        outputs = [
            gr.HTML(label="factors", elem_id="nmf-out"),
            gr.HTML(label="factors_plot"),
            gr.JSON(label="Factors (JSON)", open=False),
        ]
    return nmf_btn.click(_nmf_endpoint(server), [run_id, *options], outputs, api_name="nmf", **JOB_EVENT)


def _explain_tab(server: Server, run_id: gr.Textbox) -> Dependency:
    """The Explain tab: factors, the explainer backend and its scoring options, wired to /explain.

    Args:
        server: the app's server.
        run_id: the shared run id box.

    Returns:
        The /explain event.
    """
    cfg = server.config
    with gr.Tab("Explain", id="explain"):
        with gr.Row():
            n_comp, from_layer, to_layer, skip_first = _factor_options(server, 3)
        with gr.Row():
            backend = gr.Radio(["local", "openai"], value="local", label="Explainer backend")
            base_url = gr.Textbox(label="Base URL (OpenAI-compatible)", placeholder="https://api.openai.com/v1")
            llm_model = gr.Textbox(label="Explainer model", placeholder="gpt-4o-mini / default")
            api_key = gr.Textbox(label="Your API key (this request only, never stored)", type="password")
        with gr.Row():
            score = gr.Checkbox(False, label="Score explanations (slow on CPU)")
            n_examples = gr.Number(2, precision=0, label=f"Few-shot examples (0-{cfg.max_examples})")
            retriever = gr.Dropdown(list(RETRIEVERS), value="bm25", label="Example retriever")
        held_out = gr.Textbox(label="Held-out texts for scoring (one per line)", lines=2)
        exp_btn = gr.Button("Explain factors", variant="primary")
        outputs = [
            gr.HTML(label="explanations", elem_id="explain-out"),
            gr.HTML(label="scores"),
            gr.JSON(label="Explanations (JSON)", open=False),
        ]
    inputs = [run_id, n_comp, from_layer, to_layer, backend, base_url, llm_model, api_key, score, n_examples]
    inputs += [retriever, held_out, skip_first]
    return exp_btn.click(_explain_endpoint(server), inputs, outputs, api_name="explain", **JOB_EVENT)


def _follow_runs(
    server: Server,
    generated: Dependency,
    run: gr.JSON,
    run_id: gr.Textbox,
    target: gr.Dropdown,
    method: gr.Dropdown,
    status_md: gr.Markdown,
) -> None:
    """After /generate: keep the new run's id, offer its tokens and its model's methods, refresh the status.

    Args:
        server: the app's server.
        generated: the /generate event.
        run: the run's JSON widget.
        run_id: the shared run id box.
        target: the Saliency tab's output-token dropdown.
        method: the Saliency tab's method dropdown.
        status_md: the status line.
    """

    def after_generate(data: dict[str, Any] | None) -> tuple[str, Any, Any]:
        """Keep the new run's id, offer its generated tokens as saliency targets and the methods its model runs."""
        if not data or "run_id" not in data:
            return gr.skip(), gr.skip(), gr.skip()
        methods = list(server.attribution_methods(data["model"]))
        return data["run_id"], gr.Dropdown(choices=_target_choices(data), value=-1), gr.Dropdown(choices=methods)

    generated.success(after_generate, run, [run_id, target, method], api_visibility="private").then(
        _status_line(server), None, status_md, api_visibility="private"
    )


def build_app(models: Sequence[str] | None = None, *, config: ServingConfig | None = None) -> gr.Blocks:
    """The Blocks app over the allowed `models` (default: all that serving allows here), queued.

    Args:
        models: the models to serve, each on the allow-list (default: all that `ecco_sdk.app` allows here).
        config: the limits (default: `ServingConfig.from_env()`).

    Returns:
        The queued Blocks, with its `Server` as ``demo.ecco_server``.
    """
    server = Server(config, models)
    cfg = server.config
    with EccoBlocks(title="ecco_sdk") as demo:
        status_md, run_id, stop_btn = _run_bar()
        with gr.Tabs():
            generated, run = _generate_tab(server)
            (saliency, layers), method, target = _saliency_tab(server, run_id)
            events = [generated, saliency, layers, _rankings_tab(server, run_id), _nmf_tab(server, run_id)]
            events.append(_explain_tab(server, run_id))
        _follow_runs(server, generated, run, run_id, target, method, status_md)
        # Stop cancels this browser's running requests; their work stops at its next checkpoint.
        stop_btn.click(None, None, None, cancels=events, api_visibility="private")
        demo.load(_status_line(server), None, status_md, api_visibility="private")
    # Endpoint work is bounded by server.jobs (which says "busy" clearly); Gradio's queue only bounds the rest.
    demo.queue(default_concurrency_limit=cfg.concurrency_limit, max_size=8 * (cfg.concurrency_limit + cfg.max_queue))
    demo.ecco_server = server  # type: ignore[attr-defined]  # for tests and benchmarks
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    """Parse --host/--port, start loading the default model, and serve until interrupted.

    Args:
        argv: the command line without the program name (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="ecco_sdk Gradio app")
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0; locally the app stays on loopback.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    demo = build_app()
    preload(demo.ecco_server.models[0])  # type: ignore[attr-defined]
    demo.launch(server_name=args.host, server_port=args.port, run_history=False)


if __name__ == "__main__":
    main()
