"""The served models: an allow-list, and one process-wide LM per model, loaded on first use."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import InputError
from ..lm import LM, from_pretrained
from ..models import EMBEDDED
from .inputs import shown
from .space import on_space

#: Hub models offered only when the app runs on a Hugging Face Space (where the hub is reachable).
HUB_MODELS: tuple[str, ...] = ("HuggingFaceTB/SmolLM2-135M-Instruct", "openai-community/gpt2")
DEFAULT_MODEL = "smollm2-135m-instruct"


def allowed_models(env: Mapping[str, str] | None = None) -> list[str]:
    """The installed embedded causal models; the hub models too on a Space. Nothing else is ever loaded.

    Args:
        env: the environment that says whether this is a Space (default: ``os.environ``).

    Returns:
        Model names, the embedded ones first.
    """
    names = [m.name for m in EMBEDDED.values() if m.kind == "causal" and m.installed()]
    if on_space(env):
        names += list(HUB_MODELS)
    return names


def check_model(name: Any, allowed: Sequence[str]) -> str:
    """The model name if it is on the allow-list, else an InputError naming the allowed ones.

    Args:
        name: the model a caller asked for (spaces around it are ignored).
        allowed: the names this app serves.

    Returns:
        The name, stripped.

    Raises:
        InputError: the name is not text or not on the allow-list.
    """
    if not isinstance(name, str) or name.strip() not in allowed:
        raise InputError(f"model {shown(name)} is not served by this app; choose one of: {', '.join(allowed)}")
    return name.strip()


_LMS: dict[str, LM] = {}
_LMS_LOCK = threading.Lock()


def _device() -> str | None:
    return "cuda" if torch.cuda.is_available() else None


def get_lm(name: str) -> LM:
    """The process-wide LM for an allowed model, loaded on first use (never with trust_remote_code).

    Args:
        name: a model name the caller has checked with `check_model`.

    Returns:
        The one `LM` of this process for that model.
    """
    with _LMS_LOCK:
        lm = _LMS.get(name)
    if lm is None:
        # from_pretrained shares weights per process and serialises concurrent loads of one model.
        lm = from_pretrained(name, device=_device(), verbose=True)
        with _LMS_LOCK:
            lm = _LMS.setdefault(name, lm)
    return lm


def is_loaded(name: str) -> bool:
    """Whether a model is already in memory (so the app can say when a request will wait for a load).

    Args:
        name: a model name.

    Returns:
        True once `get_lm` has loaded it in this process.
    """
    with _LMS_LOCK:
        return name in _LMS


def preload(name: str) -> threading.Thread:
    """Start loading a model in the background, so the first request does not pay for it.

    Args:
        name: a model name the caller has checked.

    Returns:
        The started daemon thread (join it to wait for the load).
    """
    t = threading.Thread(target=get_lm, args=(name,), name=f"ecco-preload-{name}", daemon=True)
    t.start()
    return t
