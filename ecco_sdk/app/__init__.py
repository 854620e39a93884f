"""Serving the SDK to many users at once (the Gradio app's back end) and publishing the app as a Space.

Everything the Gradio app (space/app.py) does besides laying out widgets lives here, so the app only wires
these functions to components:

- `server`: `Server`, one method per API endpoint; each checks its inputs, composes SDK calls and returns an
  `EndpointResult` (the visuals to show and a JSON-serializable dict for API clients).
- `config`: `ServingConfig`, the limits and secret-policy settings (ECCO_APP_* variables override them).
- `inputs`: input coercion by name (`as_int`, `as_float`, `as_bool`, `as_text`, `as_choice`); an error
  repeats at most `ECHO_CHARS` characters of what was sent.
- `runs`: the `RunCache`. `generate` stores its `OutputSeq` under a random run id; the other endpoints take
  that id, so tabs work on one generation without recomputing it. A missing or expired id is an error that
  says to generate again. Run ids are unguessable, and each call captures into its own recording (see
  ecco_sdk.capture), so parallel users never see each other's data.
- `jobs`: `Jobs`, long-lived worker threads per endpoint, a bounded queue that answers "busy", a per-request
  time cap, and cancellation that stops the work at its next `cancel.checkpoint()`.
- `secret_policy`: `openai_target`; the operator's key goes only to the operator's endpoint, and a
  caller-given base_url is allowed only as `ServingConfig.caller_base_url` says.
- `lms`: the model allow-list and one process-wide `LM` per model.
- `zerogpu`: the heavy steps that touch model weights, wrapped by `gpu` (`spaces.GPU` when the `spaces`
  package is importable); they take and return plain data, and all cache updates happen in the caller.
- `space`: where space/ lives, whether this runs on a Space, and `load_app`.
- `publish`: stage and deploy the app as a Hugging Face Space (`ecco-sdk space deploy`).
"""

from .config import CALLER_BASE_URL_MODES, ServingConfig
from .jobs import BusyError, Jobs, release_memory
from .lms import DEFAULT_MODEL, HUB_MODELS, allowed_models, check_model, get_lm, is_loaded, preload
from .runs import Run, RunCache
from .secret_policy import caller_url_mode, check_caller_url, openai_target
from .server import ATTRIBUTION_METHODS, RETRIEVERS, EndpointResult, Server
from .space import load_app, on_space
from .zerogpu import gpu

__all__ = [
    "ATTRIBUTION_METHODS",
    "CALLER_BASE_URL_MODES",
    "DEFAULT_MODEL",
    "HUB_MODELS",
    "RETRIEVERS",
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
]
