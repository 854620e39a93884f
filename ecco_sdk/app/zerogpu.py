"""The heavy steps that touch model weights, each wrapped by `gpu` for Hugging Face ZeroGPU.

On ZeroGPU hardware such a step may run in another process, so it takes and returns plain data (runs detached
from their `LM`, see `detached`); all run-cache updates happen in the calling process (`ecco_sdk.app.server`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from ..attribution import attribute_output
from ..cancel import remaining
from ..explain import OpenAIBackend, explain_output
from ..output import OutputSeq
from .lms import get_lm

F = TypeVar("F", bound=Callable[..., Any])


def gpu(fn: F) -> F:
    """Run `fn` under `spaces.GPU` on Hugging Face ZeroGPU hardware; elsewhere return it unchanged.

    Args:
        fn: a function that takes and returns plain data.

    Returns:
        ``spaces.GPU(fn)`` when the `spaces` package is importable, else `fn` itself.
    """
    try:  # imported here: `spaces` exists only on a Space, and tests swap it in sys.modules
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


def detached(out: OutputSeq) -> OutputSeq:
    """A shallow copy without the LM back-reference, so it can cross to a ZeroGPU worker cheaply.

    Args:
        out: a run, attached or not.

    Returns:
        A copy with ``lm=None`` and its own attributions dict.
    """
    return dataclasses.replace(out, lm=None, attributions=dict(out.attributions))


@gpu
def generate(model: str, prompt: str, n_new: int, sampling: dict[str, Any]) -> OutputSeq:
    """Generation on the model's device; returns the run without its LM.

    Args:
        model: an allowed model name.
        prompt: the checked prompt.
        n_new: tokens to generate.
        sampling: `LM.generate` keyword arguments (do_sample, temperature, top_k, top_p, seed).

    Returns:
        The run, detached.
    """
    out = get_lm(model).generate(prompt, generate=n_new, **sampling)
    out.lm = None
    return out


@gpu
def attribute(model: str, out: OutputSeq, method: str, n_steps: int | str, max_steps: int) -> Any:
    """One attribution method over every generated token of a detached run ("auto" IG steps up to max_steps).

    Args:
        model: the run's model name.
        out: the run, detached.
        method: a canonical attribution method name.
        n_steps: IG steps, or "auto".
        max_steps: the cap of "auto".

    Returns:
        The method's attribution over the run's generated tokens.
    """
    lm = get_lm(model)
    extra = {"max_steps": max_steps} if n_steps == "auto" else {}
    return attribute_output(lm, out.attach(lm), [method], n_steps=n_steps, **extra)[method]


@gpu
def lens(model: str, out: OutputSeq, position: int | None, watch: list[str], topk: int) -> tuple[Any, Any, Any]:
    """Logit-lens analyses of a detached run: layer predictions, rankings, and rankings of watched tokens.

    Args:
        model: the run's model name.
        out: the run, detached.
        position: index of the predicted token (None: the first generated token).
        watch: token texts to follow through the layers (empty: none).
        topk: predictions per layer.

    Returns:
        (layer predictions, rankings, watched rankings or None).
    """
    out.attach(get_lm(model))
    preds = out.layer_predictions(position=position, topk=topk)
    ranks = out.rankings()
    watched = out.rankings_watch(watch, position=position) if watch else None
    return preds, ranks, watched


@gpu
def layer_view(model: str, out: OutputSeq, target: int) -> Any:
    """Gradient x activation of one generated token at every layer of a detached run (one forward, one backward).

    Args:
        model: the run's model name.
        out: the run, detached.
        target: index of the generated token (-1: the last).

    Returns:
        The layer attribution (layers x positions).
    """
    return out.attach(get_lm(model)).layer_attributions(target=target, method="grad_x_act")


@gpu
def explain(model: str, out: OutputSeq, n_components: int, layers: tuple, backend: dict[str, Any], **kw: Any) -> Any:
    """Factorize, explain each factor and (optionally) score, on a detached run.

    `backend` is plain data ({"kind", "model", "base_url", "api_key", "timeout"}, from `openai_target`); the
    OpenAI backend object (whose key is a non-picklable Secret) is built here, used for this call, and dropped.

    Args:
        model: the run's model name.
        out: the run, detached.
        n_components: NMF factors.
        layers: (from_layer, to_layer) as `layer_bounds` gives them.
        backend: the explainer backend as plain data.
        **kw: further `explain_output` keyword arguments (score, held_out, n_examples, ...).

    Returns:
        The explained (and maybe scored) factors.
    """
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
