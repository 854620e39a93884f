"""One error family, so callers can catch everything ecco_sdk raises on bad input with one except."""

from __future__ import annotations


class EccoError(Exception):
    """Base of every error ecco_sdk raises on purpose; the message says what to change."""


class InputError(EccoError, ValueError):
    """A call argument (text, position, layer, count, name) is not usable."""


class ModelLoadError(EccoError):
    """A model could not be found, downloaded or converted."""


class UnsupportedModelError(EccoError):
    """The model's architecture lacks a part an analysis needs (found structurally)."""


class FileFormatError(EccoError):
    """A saved .ecco file is damaged or not an ecco_sdk file."""


class ConfigurationError(EccoError):
    """An environment setting or service (embedding model, Chroma, API key) is missing or inconsistent."""


class BackendError(EccoError):
    """An LLM or embedding backend failed: unreachable, refused the key, or timed out."""


class PublishError(EccoError):
    """Publishing to the Hugging Face Hub failed: unreachable, refused the token, or rejected the upload."""


class Cancelled(EccoError):
    """The work was stopped because its caller cancelled it (a closed browser tab, a cancelled API job)."""


class TimeLimitError(Cancelled):
    """The work ran past its time cap and was stopped; the message names the limit and how to raise it."""
