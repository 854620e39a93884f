"""The example store: library examples embedded in a Chroma collection, kept in step with the library file.

Where: an embedded ``chromadb.PersistentClient`` under ``cache_dir() / "chroma"`` by default, or a Chroma
server (``chromadb.HttpClient``) when ``CHROMA_HOST`` and/or ``CHROMA_PORT`` are set. Every request to a
server is bounded by a connect and a read timeout (see CHROMA_TIMEOUT), and no lock is held while waiting on one.

Idempotent loading: each example is stored under its library id with a content hash in its metadata;
`ExampleStore.sync` embeds and upserts only new or edited examples and (by default) deletes ids the
library no longer has, so re-running never duplicates. The collection's metadata records which
embedding model made the vectors (and their size); opening it with another embedder raises
ConfigurationError. Vectors are always supplied by us, so Chroma's own (downloading) default embedding
function is never used. A record's vector is the mean of the embeddings of its two search texts
(`records.search_texts`: its active tokens alone, and them in close context).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import cancel
from ..checks import seconds_from_env
from ..errors import BackendError, ConfigurationError, EccoError, InputError
from .embeddings import Embedder, get_embedder, normalize_rows
from .library import Example, Library
from .records import ActivationRecord, search_texts

DEFAULT_COLLECTION = "ecco-sdk-examples"
#: Bumped when what gets embedded changes, so stored vectors are rebuilt rather than silently mixed.
STORE_SCHEMA = 2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")

#: Seconds to wait for a Chroma server to accept a connection, and to answer one request once connected.
#: ECCO_SDK_CHROMA_CONNECT_TIMEOUT and ECCO_SDK_CHROMA_TIMEOUT override them. chromadb's own HttpClient waits
#: forever (httpx timeout=None): a server that accepts and never answers hung every dense caller (issue 12).
CHROMA_CONNECT_TIMEOUT = 5.0
CHROMA_TIMEOUT = 30.0

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()  # guards the two dicts only; never held across network or disk I/O
_LOCATION_LOCKS: dict[str, threading.Lock] = {}


def _chroma() -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb  # chromadb loads only when a store is opened

    return chromadb


def _settings() -> Any:
    from chromadb.config import Settings  # chromadb loads only when a store is opened

    return Settings(anonymized_telemetry=False)


def chroma_timeouts() -> tuple[float, float]:
    """(connect, read) timeouts in seconds for a Chroma server, from the environment or the defaults.

    Returns:
        ``(connect, read)``: ECCO_SDK_CHROMA_CONNECT_TIMEOUT or `CHROMA_CONNECT_TIMEOUT`, and
        ECCO_SDK_CHROMA_TIMEOUT or `CHROMA_TIMEOUT`.

    Raises:
        ConfigurationError: one of the variables is set but is not a positive number.
    """
    return (
        seconds_from_env("ECCO_SDK_CHROMA_CONNECT_TIMEOUT", CHROMA_CONNECT_TIMEOUT),
        seconds_from_env("ECCO_SDK_CHROMA_TIMEOUT", CHROMA_TIMEOUT),
    )


def chroma_location(path: str | Path | None = None) -> str:
    """Where the store lives: ``http://host:port`` for a server, else the embedded store's folder.

    Args:
        path: a folder for an embedded store; None uses the server named by CHROMA_HOST/CHROMA_PORT when either
            is set, else ``cache_dir() / "chroma"``.

    Returns:
        The server URL, or the folder's absolute path.
    """
    host, port = os.environ.get("CHROMA_HOST"), os.environ.get("CHROMA_PORT")
    if path is None and (host or port):
        return f"http://{host or 'localhost'}:{port or 8000}"
    if path is None:
        from ..models import cache_dir  # models pulls in torch: only for an embedded store

        path = cache_dir() / "chroma"
    return str(Path(path).expanduser().resolve())


def chroma_client(path: str | Path | None = None) -> Any:
    """A Chroma client: HttpClient when CHROMA_HOST/CHROMA_PORT are set (and no path given), else embedded.

    Clients are cached per location. A server client is made without any lock held, so a slow or silent server
    delays only its own callers (each for at most the timeouts); an embedded one under a per-folder lock.

    Args:
        path: a folder for an embedded store (see `chroma_location`); None picks the server or the default folder.

    Returns:
        A ``chromadb`` client (``HttpClient`` or ``PersistentClient``), the same object for the same location.

    Raises:
        ConfigurationError: CHROMA_PORT is not a number, the server does not answer a heartbeat within the
            timeouts, or the installed chromadb cannot have its requests bounded.
    """
    location = chroma_location(path)
    with _CLIENTS_LOCK:
        if location in _CLIENTS:
            return _CLIENTS[location]
        folder_lock = _LOCATION_LOCKS.setdefault(location, threading.Lock())
    if location.startswith("http://"):
        client = _http_client(location)
    else:
        with folder_lock:  # two embedded clients opening one folder at once is not safe; no network here
            with _CLIENTS_LOCK:
                if location in _CLIENTS:
                    return _CLIENTS[location]
            Path(location).mkdir(parents=True, exist_ok=True)
            client = _chroma().PersistentClient(path=location, settings=_settings())
    with _CLIENTS_LOCK:
        kept = _CLIENTS.setdefault(location, client)  # a racing caller may have stored one first: keep that one
    if kept is not client and hasattr(client, "close"):
        client.close()
    return kept


def _http_client(location: str) -> Any:
    """An HttpClient whose every request is bounded by the connect and read timeouts."""
    host, _, port = location[len("http://") :].rpartition(":")
    if not port.isdigit():
        raise ConfigurationError(f"CHROMA_PORT must be a number, got {port[:80]!r}")
    connect, read = chroma_timeouts()
    hint = (
        "start it with `chroma run --path DIR --host HOST --port PORT`, fix CHROMA_HOST/CHROMA_PORT, or unset them "
        "to use the embedded store"
    )
    _probe(location, connect, read, hint)
    chromadb = _chroma()
    try:
        client = chromadb.HttpClient(host=host, port=int(port), settings=_settings())
    except Exception as err:
        why = f"cannot reach the Chroma server at {location} ({type(err).__name__}); {hint}"
        raise ConfigurationError(why) from err
    _bound_requests(client, connect, read)
    return client


def _probe(location: str, connect: float, read: float, hint: str) -> None:
    """One bounded heartbeat first: chromadb's client makes its own first requests with no timeout at all."""
    import httpx  # httpx comes with chromadb: only when a Chroma server is used

    timeout = httpx.Timeout(cancel.remaining(read), connect=cancel.remaining(connect))
    with (
        _server_errors(location, "answer a heartbeat", ConfigurationError, hint),
        httpx.Client(timeout=timeout) as http,
    ):
        http.get(f"{location}/api/v2/heartbeat").raise_for_status()


def _bound_requests(client: Any, connect: float, read: float) -> None:
    """Give the client's httpx session our timeouts (chromadb 1.5 builds it with timeout=None and no setting)."""
    import httpx  # httpx comes with chromadb: only when a Chroma server is used

    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise ConfigurationError(
            "this chromadb version keeps its HTTP session elsewhere, so ecco_sdk cannot bound its requests; "
            "install chromadb 1.5.x"
        )
    session.timeout = httpx.Timeout(read, connect=connect)


def _timeout_words(err: Exception, connect: float, read: float) -> str:
    import httpx  # httpx comes with chromadb: only when a Chroma server is used

    if isinstance(err, httpx.ConnectTimeout):
        return f"{connect:g} s to connect (ECCO_SDK_CHROMA_CONNECT_TIMEOUT)"
    return f"{read:g} s (ECCO_SDK_CHROMA_TIMEOUT)"


@contextmanager
def _server_errors(location: str, action: str, error: type[EccoError] = BackendError, hint: str = "") -> Iterator[None]:
    """Turn a Chroma server's network failure during `action` into `error`, saying which limit was hit."""
    import httpx  # httpx comes with chromadb: only when a Chroma server is used

    hint = f"; {hint}" if hint else ""
    try:
        yield
    except httpx.TimeoutException as err:
        connect, read = chroma_timeouts()
        words = _timeout_words(err, connect, read)
        raise error(f"the Chroma server at {location} did not {action} within {words}{hint}") from err
    except httpx.HTTPError as err:
        why = f"cannot reach the Chroma server at {location} ({type(err).__name__} while trying to {action}){hint}"
        raise error(why) from err


def forget_clients() -> None:
    """Drop cached clients (e.g. after a test server stops)."""
    with _CLIENTS_LOCK:
        _CLIENTS.clear()
        _LOCATION_LOCKS.clear()


def check_collection_name(name: str) -> str:
    """Chroma's collection-name rules, checked up front so the error says what to change.

    Args:
        name: the collection name.

    Returns:
        The name, unchanged.

    Raises:
        InputError: it is not 3-512 letters, digits, ``.``, ``_`` or ``-`` starting and ending with a letter
            or digit, or it holds ``..``.
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InputError(
            f"collection name {name!r} is invalid: use 3-512 characters of letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


@dataclass
class SyncStats:
    """What one `sync` changed: how many examples were added, re-embedded, left alone, or removed.

    Args:
        added: examples the collection did not hold.
        updated: examples whose content changed, so they were embedded again.
        unchanged: examples already stored with the same content.
        removed: stored examples the library no longer has, deleted.
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def to_dict(self) -> dict[str, int]:
        """Plain dict for JSON.

        Returns:
            ``{"added": ..., "updated": ..., "unchanged": ..., "removed": ...}``.
        """
        return asdict(self)


@dataclass
class Hit:
    """One stored example near a query: its id, vector and cosine similarity.

    Args:
        id: the example's library id.
        similarity: cosine similarity to the query vector.
        embedding: the stored unit vector.
    """

    id: str
    similarity: float
    embedding: np.ndarray


class ExampleStore:
    """A Chroma collection of library examples, tied to one embedding model.

    Get one with `open_store` (opens and syncs) or `ExampleStore.open` (opens only).

    Args:
        collection: the Chroma collection.
        embedder: the embedder that made its vectors.
        location: where it lives (a server URL or a folder), named in error messages.
        client: the Chroma client that holds it, needed by `drop`.
    """

    def __init__(self, collection: Any, embedder: Embedder, location: str, client: Any = None) -> None:
        self.collection = collection
        self.client = client
        self.embedder = embedder
        self.location = location
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ExampleStore(collection={self.name!r}, embedder={self.embedder.name!r}, location={self.location!r})"

    @property
    def name(self) -> str:
        """The Chroma collection name."""
        return self.collection.name

    @classmethod
    def open(
        cls,
        embedder: str | Embedder | None = None,
        *,
        client: Any = None,
        path: str | Path | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> ExampleStore:
        """Open (or create) the collection, refusing one that was built with another embedding model.

        Args:
            embedder: an `Embedder` or a spec for `get_embedder` (None: $ECCO_SDK_EMBEDDING or MiniLM).
            client: a Chroma client to use; None uses `chroma_client`.
            path: a folder for an embedded store when no client is given (see `chroma_location`).
            collection: the collection name.

        Returns:
            The store, not yet synced with any library.

        Raises:
            InputError: the collection name or the embedder spec is invalid.
            ConfigurationError: the collection cannot be opened, was not made by ecco_sdk, or holds vectors of
                another embedding model; or the server cannot be reached (see `chroma_client`).
            BackendError: the server stopped answering while opening the collection.
        """
        emb = get_embedder(embedder)
        check_collection_name(collection)
        location = chroma_location(path) if client is None else "custom client"
        chroma_api = client if client is not None else chroma_client(path)
        metadata = {"embedding_model": emb.name, "ecco_sdk_schema": STORE_SCHEMA}
        try:
            with _server_errors(location, "open the collection"):
                col = chroma_api.get_or_create_collection(
                    collection, metadata=metadata, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
        except BackendError:
            raise
        except Exception as err:
            raise ConfigurationError(f"cannot open Chroma collection {collection!r} at {location}: {err}") from err
        found = (col.metadata or {}).get("embedding_model")
        if found is None:
            raise ConfigurationError(
                f"Chroma collection {collection!r} at {location} was not made by ecco_sdk (no embedding_model in its "
                "metadata); pass another collection name"
            )
        if found != emb.name:
            raise ConfigurationError(
                f"Chroma collection {collection!r} at {location} holds vectors from embedding model {found!r}, not "
                f"{emb.name!r}; use the same embedder (ECCO_SDK_EMBEDDING), pick another collection name, or delete "
                "this one with ExampleStore.drop()"
            )
        return cls(col, emb, location, chroma_api)

    def _check_dim(self, dim: int) -> None:
        meta = dict(self.collection.metadata or {})
        recorded = meta.get("embedding_dim")
        if recorded is None:
            meta["embedding_dim"] = int(dim)
            with _server_errors(self.location, "record the embedding size"):
                self.collection.modify(metadata=meta)
        elif int(recorded) != int(dim):
            raise ConfigurationError(
                f"collection {self.name!r} holds {recorded}-dimensional vectors but {self.embedder.name!r} now gives "
                f"{dim}; the model behind that name changed: drop the collection and sync again"
            )

    def embed_records(self, records: list[ActivationRecord]) -> np.ndarray:
        """One unit vector per record: the mean of the embeddings of its two search texts.

        Args:
            records: the records to embed.

        Returns:
            An (n_records, dim) float32 array with unit rows; (0, 0) for no records.
        """
        if not records:
            return np.zeros((0, 0), dtype=np.float32)
        flat = [text for rec in records for text in search_texts(rec)]
        vectors = self.embedder.embed(flat)
        pairs = vectors.reshape(len(records), 2, -1).mean(axis=1)
        return normalize_rows(pairs)

    def stored_hashes(self) -> dict[str, str]:
        """id -> content hash of everything in the collection.

        Returns:
            The stored hash (``""`` when missing) of every stored example, by id.

        Raises:
            BackendError: a Chroma server did not answer within its timeouts.
        """
        with _server_errors(self.location, "list the stored examples"):
            got = self.collection.get(include=["metadatas"])
        return {i: str((m or {}).get("content_hash", "")) for i, m in zip(got["ids"], got["metadatas"], strict=True)}

    def sync(self, library: Library, *, prune: bool = True, batch_size: int = 64) -> SyncStats:
        """Make the collection match the library: embed new/edited examples only; idempotent.

        Args:
            library: the examples the collection should hold.
            prune: delete stored ids the library does not have.
            batch_size: examples embedded and upserted per request.

        Returns:
            The `SyncStats` of what changed.

        Raises:
            ConfigurationError: the embedder now gives vectors of another size than the stored ones.
            BackendError: a Chroma server did not answer within its timeouts.
        """
        with self._lock, _server_errors(self.location, "store the examples"):
            stored = self.stored_hashes()
            stale = [ex for ex in library if stored.get(ex.id) != _stored_hash(ex)]
            stats = SyncStats()
            for start in range(0, len(stale), batch_size):
                part = stale[start : start + batch_size]
                vectors = self.embed_records([ex.record for ex in part])
                self._check_dim(vectors.shape[1])
                self.collection.upsert(
                    ids=[ex.id for ex in part],
                    embeddings=vectors.tolist(),
                    documents=[search_texts(ex.record)[1] for ex in part],
                    metadatas=[
                        {"content_hash": _stored_hash(ex), "category": ex.category, "explanation": ex.explanation}
                        for ex in part
                    ],
                )
            for ex in stale:
                if ex.id in stored:
                    stats.updated += 1
                else:
                    stats.added += 1
            stats.unchanged = len(library) - len(stale)
            if prune:
                gone = [i for i in stored if i not in library]
                if gone:
                    self.collection.delete(ids=gone)
                stats.removed = len(gone)
            return stats

    def count(self) -> int:
        """How many examples the collection holds.

        Returns:
            The number of stored examples.

        Raises:
            BackendError: a Chroma server did not answer within its timeouts.
        """
        with _server_errors(self.location, "count the stored examples"):
            return int(self.collection.count())

    def embed_query(self, record: ActivationRecord) -> np.ndarray:
        """The query vector for a record, checked against the collection's recorded size.

        Args:
            record: the factor's record.

        Returns:
            Its unit vector (see `embed_records`).

        Raises:
            ConfigurationError: the vector's size differs from the one the collection recorded.
        """
        vec = self.embed_records([record])[0]
        recorded = (self.collection.metadata or {}).get("embedding_dim")
        if recorded is not None and int(recorded) != vec.shape[0]:
            self._check_dim(vec.shape[0])
        return vec

    def query(self, vector: np.ndarray, n: int) -> list[Hit]:
        """The n stored examples nearest to a vector, nearest first, with their vectors.

        Args:
            vector: a unit query vector (see `embed_query`).
            n: how many examples to return at most.

        Returns:
            Up to n hits (`Hit`), nearest first; empty when the collection is empty or n <= 0.

        Raises:
            BackendError: a Chroma server did not answer within its timeouts.
        """
        total = self.count()
        if total == 0 or n <= 0:
            return []
        with _server_errors(self.location, "answer a nearest-example query"):
            got = self.collection.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
                n_results=min(int(n), total),
                include=["embeddings"],
            )
        ids = got["ids"][0]
        vectors = np.asarray(got["embeddings"][0], dtype=np.float32).reshape(len(ids), -1)
        q = np.asarray(vector, dtype=np.float32)
        return [Hit(id=i, similarity=float(v @ q), embedding=v) for i, v in zip(ids, vectors, strict=True)]

    def drop(self) -> None:
        """Delete the whole collection (to rebuild it with another embedder).

        Raises:
            ConfigurationError: the store was made without its client.
            BackendError: a Chroma server did not answer within its timeouts.
        """
        if self.client is None:
            raise ConfigurationError("this store was built without its client; delete the collection with your client")
        with _server_errors(self.location, "delete the collection"):
            self.client.delete_collection(self.name)


def _stored_hash(example: Example) -> str:
    return f"v{STORE_SCHEMA}:{example.content_hash()}"


def open_store(
    library: Library,
    embedder: str | Embedder | None = None,
    *,
    client: Any = None,
    path: str | Path | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> ExampleStore:
    """Open the store and bring it in step with the library (the usual way to get one).

    Args:
        library: the examples the store should hold (see `ExampleStore.sync`).
        embedder: an `Embedder` or a spec for `get_embedder` (None: $ECCO_SDK_EMBEDDING or MiniLM).
        client: a Chroma client to use; None uses `chroma_client`.
        path: a folder for an embedded store when no client is given (see `chroma_location`).
        collection: the collection name.

    Returns:
        The synced `ExampleStore`.

    Raises:
        InputError: the collection name or the embedder spec is invalid.
        ConfigurationError: the collection belongs to another embedding model or was not made by ecco_sdk, or
            the Chroma server cannot be reached.
        BackendError: the server stopped answering during the sync.
    """
    store = ExampleStore.open(embedder, client=client, path=path, collection=collection)
    store.sync(library)
    return store
