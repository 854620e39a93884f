"""ecco_sdk: explore and explain what Transformer language models do inside.

Start with `from_pretrained` to get an `LM`, then `lm.generate(...)` for an `OutputSeq`:
candidates per step, hidden states, FFN activations, input saliency, the logit lens
(`layer_predictions`, `rankings`, `rankings_watch`), NMF factors (`run_nmf`) and their
LLM-written explanations. `list_models()` says what loads offline.
"""

from .adapters import AdapterSpec
from .errors import (
    BackendError,
    ConfigurationError,
    EccoError,
    FileFormatError,
    InputError,
    ModelLoadError,
    PublishError,
    UnsupportedModelError,
)
from .lm import LM, from_pretrained
from .models import cache_dir, list_models
from .output import BatchOutput, Candidate, OutputSeq, load

__version__ = "0.1.0"

__all__ = [
    "LM",
    "AdapterSpec",
    "BackendError",
    "BatchOutput",
    "Candidate",
    "ConfigurationError",
    "EccoError",
    "FileFormatError",
    "InputError",
    "ModelLoadError",
    "OutputSeq",
    "PublishError",
    "UnsupportedModelError",
    "__version__",
    "cache_dir",
    "from_pretrained",
    "list_models",
    "load",
]
