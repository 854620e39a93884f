"""The app's limits, cache sizes and secret policy settings, from code or ECCO_APP_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..checks import check_choice, check_positive
from ..errors import InputError
from .inputs import shown

#: Who may name an OpenAI-compatible server: nobody, public servers only, or any server ("auto": off on a
#: Space, any locally, so `make app` can use a local vLLM/llama.cpp server).
CALLER_BASE_URL_MODES: tuple[str, ...] = ("auto", "off", "public", "any")


@dataclass(frozen=True)
class ServingConfig:
    """Per-request limits, cache sizes and secret policy; `from_env` reads overrides like ECCO_APP_MAX_NEW_TOKENS=32.

    Text fields: `openai_base_url` is the operator's OpenAI-compatible server (empty: $OPENAI_BASE_URL, else
    api.openai.com), the only place the operator's $OPENAI_API_KEY is ever sent. `caller_base_url` says
    whether callers may name their own server (one of CALLER_BASE_URL_MODES); `allowed_base_urls` lists
    servers (comma-separated URL prefixes) callers may always name, private ones included.

    Args:
        max_input_tokens: most tokens of a prompt or held-out text.
        max_new_tokens: most tokens one /generate call makes.
        max_components: most NMF factors per request.
        max_ig_steps: most integrated-gradients steps (also the cap of "auto").
        default_ig_steps: IG steps when the caller gives none.
        max_watch_tokens: most watched tokens in /rankings.
        max_examples: most few-shot examples per explanation prompt.
        max_held_out: most held-out texts for scoring.
        explain_max_tokens: most tokens the explainer LLM writes per explanation.
        run_cache_size: runs kept in all.
        runs_per_session: runs kept per session.
        run_ttl_s: seconds a run is kept.
        concurrency_limit: requests of one endpoint that run at once.
        max_queue: requests of one endpoint that may wait.
        max_jobs_per_session: requests one session may have running or waiting.
        max_request_s: seconds a request may run before it is stopped.
        upstream_timeout_s: seconds one HTTP attempt to an LLM server may take.
        openai_base_url: the operator's OpenAI-compatible server.
        caller_base_url: who may name a server (one of CALLER_BASE_URL_MODES).
        allowed_base_urls: comma-separated URL prefixes callers may always name.

    Raises:
        InputError: a number field is not positive and finite, or a text field is not text.
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
            check_positive(value, f"ServingConfig.{f.name}")
        check_choice(self.caller_base_url, "ServingConfig.caller_base_url", CALLER_BASE_URL_MODES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        """Defaults overridden by ECCO_APP_<FIELD> variables, so a Space can change limits without code.

        Args:
            env: the variables to read (default: ``os.environ``).

        Returns:
            The config.

        Raises:
            InputError: a variable of a number field does not parse, or a value is out of range.
        """
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
        """The limits as plain data (shown in the app and returned to API clients); no server URLs.

        Returns:
            Every number field by name.
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if not isinstance(v, str)}
