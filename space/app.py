"""ecco_sdk's Gradio app: generation, saliency, layer rankings, NMF factors and their explanations.

This file only lays out widgets and wires them to `ecco_sdk.serving` (limits, allow-list, run cache,
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

from ecco_sdk import EccoError
from ecco_sdk.serving import ATTRIBUTION_METHODS, RETRIEVERS, Server, ServingConfig, is_loaded, preload

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
    """Blocks whose events take missing trailing inputs as None (a raw API call may send fewer values), so the
    endpoint names each missing field ("max_new_tokens is missing") instead of Gradio's generic failure."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        inputs.extend([None] * (len(block_fn.inputs) - len(inputs)))


def _target_choices(run: dict[str, Any]) -> list[tuple[str, int]]:
    """One dropdown entry per generated token of a run."""
    tokens, positions = run.get("tokens", []), run.get("generated_positions", [])
    return [("last generated token", -1)] + [(f"#{i}: {tokens[p]!r}", i) for i, p in enumerate(positions)]


def build_app(models: Sequence[str] | None = None, *, config: ServingConfig | None = None) -> gr.Blocks:
    """The Blocks app over the allowed `models` (default: all that serving allows here), queued."""
    server = Server(config, models)
    cfg = server.config

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

    @_job(server, "saliency")
    def saliency(
        run_id: str,
        method: str = "ig",
        style: str = "minimal",
        target: int = -1,
        n_steps: int | str = cfg.default_ig_steps,
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

    def after_generate(run: dict[str, Any] | None) -> tuple[str, Any, Any]:
        """Keep the new run's id, offer its generated tokens as saliency targets and the methods its model runs."""
        if not run or "run_id" not in run:
            return gr.skip(), gr.skip(), gr.skip()
        methods = list(server.attribution_methods(run["model"]))
        return run["run_id"], gr.Dropdown(choices=_target_choices(run), value=-1), gr.Dropdown(choices=methods)

    def status() -> str:
        """Which models are in memory, so users know whether the first request will wait for a load."""
        parts = [f"`{m}` {'ready' if is_loaded(m) else 'loads on first use'}" for m in server.models]
        limits = f"{cfg.max_input_tokens} input / {cfg.max_new_tokens} new tokens, {cfg.max_request_s:g} s per request"
        return "Models: " + ", ".join(parts) + f" · limits: {limits} · {server.runs.describe()}"

    with EccoBlocks(title="ecco_sdk") as demo:
        gr.Markdown(INTRO)
        status_md = gr.Markdown("Models: checking...")
        with gr.Row():
            run_id = gr.Textbox(label="Run id (filled by Generate; used by the other tabs)", max_lines=1, scale=4)
            stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop-btn")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    prompt = gr.Textbox(label="Prompt", lines=2, value=EXAMPLES[0][0], scale=3)
                    model = gr.Dropdown(
                        server.models, value=server.models[0], label="Model", scale=1, allow_custom_value=True
                    )
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
                layer_btn = gr.Button("Layer view (each layer's share, same output token)", elem_id="layers-btn")
                layer_html = gr.HTML(label="layers", elem_id="layers-out")
                layer_json = gr.JSON(label="Layer view (JSON)", open=False)
            with gr.Tab("Layer rankings", id="rankings"):
                with gr.Row():
                    watch = gr.Textbox(
                        label="Watch tokens (comma-separated, keep leading spaces)", value=" Paris, London"
                    )
                    position = gr.Number(-1, precision=0, label="Position (-1 = first generated token)")
                    topk = gr.Slider(1, 10, value=5, step=1, label="Predictions per layer")
                rank_btn = gr.Button("Run the logit lens", variant="primary")
                preds_html = gr.HTML(label="layer_predictions")
                ranks_html = gr.HTML(label="rankings")
                watch_html = gr.HTML(label="rankings_watch")
                rank_json = gr.JSON(label="Rankings (JSON)", open=False)
            with gr.Tab("NMF", id="nmf"):
                with gr.Row():
                    n_comp = gr.Number(4, precision=0, label=f"Factors (1-{cfg.max_components})")
                    from_layer = gr.Number(0, precision=0, label="From layer")
                    to_layer = gr.Number(-1, precision=0, label="To layer (exclusive, -1 = last)")
                    skip_first = gr.Checkbox(True, label=SKIP_LABEL)
                nmf_btn = gr.Button("Find factors", variant="primary")
                nmf_html = gr.HTML(label="factors", elem_id="nmf-out")
                nmf_plot = gr.HTML(label="factors_plot")
                nmf_json = gr.JSON(label="Factors (JSON)", open=False)
            with gr.Tab("Explain", id="explain"):
                with gr.Row():
                    e_comp = gr.Number(3, precision=0, label=f"Factors (1-{cfg.max_components})")
                    e_from = gr.Number(0, precision=0, label="From layer")
                    e_to = gr.Number(-1, precision=0, label="To layer (exclusive, -1 = last)")
                    e_skip = gr.Checkbox(True, label=SKIP_LABEL)
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
                exp_html = gr.HTML(label="explanations", elem_id="explain-out")
                exp_scores = gr.HTML(label="scores")
                exp_json = gr.JSON(label="Explanations (JSON)", open=False)

        gen_ev = gen_btn.click(
            generate,
            [prompt, model, n_new, do_sample, temperature, top_k, top_p, seed],
            [gen_html, gen_json],
            api_name="generate",
            **JOB_EVENT,
        )
        gen_ev.success(after_generate, gen_json, [run_id, target, method], api_visibility="private").then(
            status, None, status_md, api_visibility="private"
        )
        sal_ev = sal_btn.click(
            saliency, [run_id, method, style, target, n_steps], [sal_html, sal_json], api_name="saliency", **JOB_EVENT
        )
        layer_ev = layer_btn.click(layers, [run_id, target], [layer_html, layer_json], api_name="layers", **JOB_EVENT)
        rank_ev = rank_btn.click(
            rankings,
            [run_id, watch, position, topk],
            [preds_html, ranks_html, watch_html, rank_json],
            api_name="rankings",
            **JOB_EVENT,
        )
        nmf_ev = nmf_btn.click(
            nmf,
            [run_id, n_comp, from_layer, to_layer, skip_first],
            [nmf_html, nmf_plot, nmf_json],
            api_name="nmf",
            **JOB_EVENT,
        )
        exp_ev = exp_btn.click(
            explain,
            [
                run_id,
                e_comp,
                e_from,
                e_to,
                backend,
                base_url,
                llm_model,
                api_key,
                score,
                n_examples,
                retriever,
                held_out,
                e_skip,
            ],
            [exp_html, exp_scores, exp_json],
            api_name="explain",
            **JOB_EVENT,
        )
        # Stop cancels this browser's running requests; their work stops at its next checkpoint.
        events = [gen_ev, sal_ev, layer_ev, rank_ev, nmf_ev, exp_ev]
        stop_btn.click(None, None, None, cancels=events, api_visibility="private")
        demo.load(status, None, status_md, api_visibility="private")
    # Endpoint work is bounded by server.jobs (which says "busy" clearly); Gradio's queue only bounds the rest.
    demo.queue(default_concurrency_limit=cfg.concurrency_limit, max_size=8 * (cfg.concurrency_limit + cfg.max_queue))
    demo.ecco_server = server  # type: ignore[attr-defined]  # for tests and benchmarks
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    """Parse --host/--port, start loading the default model, and serve until interrupted."""
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
