"""The few-shot library: hand-checked (tokens, 0-10 activations, explanation) examples the explainer imitates.

File format (``ecco_sdk/explain/data/examples.json`` by default)::

    {"version": 1, "examples": [
      {"id": "punct-commas-01", "category": "punctuation", "source": "hand",
       "tokens": ["I", " love", " apples", ",", " pears"], "activations": [0, 0, 0, 10, 0],
       "explanation": "commas separating items in a list"}]}

Every example needs a unique ``id`` (letters, digits, ``.``, ``_``, ``-``), a ``category``, one integer
0..10 per token and a non-empty explanation; ``source`` is optional. A bad file raises
``FileFormatError`` naming the example and the field to fix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..bounded_io import open_regular, read_json
from ..checks import is_int
from ..errors import ConfigurationError, FileFormatError, InputError
from .records import MAX_LEVEL, ActivationRecord

SUPPORTED_VERSIONS = (1,)
MAX_LIBRARY_BYTES = 64 * 2**20  # the built-in library is 57 kB; a user library of 100k examples fits
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REQUIRED = ("id", "category", "tokens", "activations", "explanation")


def default_library_path() -> Path:
    """Where the library shipped with ecco_sdk lives.

    Returns:
        The path of ``ecco_sdk/explain/data/examples.json`` (it may be missing from a broken install).
    """
    return Path(__file__).resolve().parent / "data" / "examples.json"


@dataclass(frozen=True)
class Example:
    """One hand-checked pattern: what the explainer is shown as a worked example.

    Build one with `parse_example` (which checks every field) or read a whole file with `load_library`.

    Args:
        id: unique name in its library: 1-128 letters, digits, ``.``, ``_`` or ``-``.
        category: the kind of pattern (``"punctuation"``, ``"numbers"``...), for spotting thin categories.
        tokens: the example's tokens, as the model's tokenizer would show them.
        activations: one integer level 0-10 per token.
        explanation: the one-line explanation the explainer should imitate.
        source: where the example came from (``"hand"`` by default).
    """

    id: str
    category: str
    tokens: tuple[str, ...]
    activations: tuple[int, ...]
    explanation: str
    source: str = "hand"

    @cached_property
    def record(self) -> ActivationRecord:
        """The example as an activation record (its activations already are 0-10 levels).

        Returns:
            An `ActivationRecord` over the example's tokens, computed once and cached.
        """
        return ActivationRecord.from_levels(list(self.tokens), list(self.activations))

    def content_hash(self) -> str:
        """A digest of everything that shapes the prompt, so an edited example is re-embedded.

        Returns:
            32 hex digits of the SHA-256 of the category, tokens, activations, explanation and source.
        """
        payload = json.dumps(
            [self.category, list(self.tokens), list(self.activations), self.explanation, self.source],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        """The example in the library's JSON form.

        Returns:
            A dict with the keys ``id``, ``category``, ``tokens``, ``activations``, ``explanation`` and ``source``.
        """
        d = asdict(self)
        d["tokens"] = list(self.tokens)
        d["activations"] = list(self.activations)
        return d


@dataclass
class Library:
    """All examples of one library file, in file order, addressable by id.

    ``len(library)``, ``iter(library)`` and ``example_id in library`` work as on a list of examples.

    Args:
        examples: the examples, in file order.
        path: the file they were read from (named in error messages), or None.
        version: the file format version.

    Raises:
        FileFormatError: two examples share an id.
    """

    examples: list[Example]
    path: str | None = None
    version: int = 1
    _by_id: dict[str, Example] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {}
        for ex in self.examples:
            if ex.id in self._by_id:
                raise FileFormatError(
                    f"{self.path or 'library'}: example id {ex.id!r} is used twice; ids must be unique"
                )
            self._by_id[ex.id] = ex

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __contains__(self, example_id: object) -> bool:
        return example_id in self._by_id

    def get(self, example_id: str) -> Example:
        """The example with this id.

        Args:
            example_id: the example's ``id``.

        Returns:
            The `Example`.

        Raises:
            InputError: the library has no example with this id.
        """
        try:
            return self._by_id[example_id]
        except KeyError:
            raise InputError(f"no example with id {example_id!r} in {self.path or 'the library'}") from None

    @property
    def ids(self) -> list[str]:
        """Example ids in file order.

        Returns:
            One id per example.
        """
        return [ex.id for ex in self.examples]

    def categories(self) -> dict[str, int]:
        """How many examples each category has (to spot thin categories).

        Returns:
            category -> number of examples, in order of first appearance.
        """
        counts: dict[str, int] = {}
        for ex in self.examples:
            counts[ex.category] = counts.get(ex.category, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The library in its JSON file form.

        Returns:
            ``{"version": ..., "examples": [...]}``, which `parse_library` reads back.
        """
        return {"version": self.version, "examples": [ex.to_dict() for ex in self.examples]}


def _where(path: str, index: int, raw: Any) -> str:
    ident = raw.get("id") if isinstance(raw, dict) else None
    return f"{path}: example #{index}" + (f" (id {ident!r})" if isinstance(ident, str) else "")


def parse_example(raw: Any, index: int = 0, path: str = "library") -> Example:
    """Validate one example dict and build it; the error names the example and the field to fix.

    Args:
        raw: one entry of the file's ``examples`` list (parsed JSON).
        index: its position in that list, for the error message.
        path: the file it came from, for the error message.

    Returns:
        The `Example`, with category, explanation and source stripped of surrounding blanks.

    Raises:
        FileFormatError: a key is missing, the id is malformed, a text field is empty, or the activations are
            not one integer 0-10 per token.
    """
    where = _where(path, index, raw)
    if not isinstance(raw, dict):
        raise FileFormatError(f"{where}: must be a JSON object with keys {', '.join(_REQUIRED)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise FileFormatError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    ex_id, category, tokens, acts, expl = (raw[k] for k in _REQUIRED)
    source = raw.get("source", "hand")
    if not isinstance(ex_id, str) or not _ID.match(ex_id):
        raise FileFormatError(f"{where}: 'id' must be 1-128 letters, digits, '.', '_' or '-' (got {ex_id!r})")
    for name, value in (("category", category), ("explanation", expl), ("source", source)):
        if not isinstance(value, str) or not value.strip():
            raise FileFormatError(f"{where}: {name!r} must be a non-empty string")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise FileFormatError(f"{where}: 'tokens' must be a non-empty list of strings")
    if not isinstance(acts, list) or len(acts) != len(tokens):
        n = len(acts) if isinstance(acts, list) else "no"
        raise FileFormatError(
            f"{where}: 'activations' has {n} values but 'tokens' has {len(tokens)}; give one integer 0-10 per token"
        )
    for pos, a in enumerate(acts):
        if not (is_int(a) and 0 <= a <= MAX_LEVEL):
            raise FileFormatError(
                f"{where}: activations[{pos}] is {a!r} (token {tokens[pos]!r}); activations must be integers 0-10"
            )
    return Example(
        id=ex_id,
        category=category.strip(),
        tokens=tuple(tokens),
        activations=tuple(acts),
        explanation=expl.strip(),
        source=source.strip(),
    )


def parse_library(data: Any, path: str = "library") -> Library:
    """Validate a whole library document (already parsed JSON).

    Args:
        data: the parsed document, ``{"version": 1, "examples": [...]}``.
        path: where it came from, for error messages.

    Returns:
        The `Library`, examples in document order.

    Raises:
        FileFormatError: the document is not such an object, its version is not supported, ``examples`` is empty,
            an example is invalid (see `parse_example`), or two examples share an id.
    """
    if not isinstance(data, dict) or "examples" not in data:
        raise FileFormatError(f'{path}: expected an object like {{"version": 1, "examples": [...]}}')
    version = data.get("version", 1)
    if version not in SUPPORTED_VERSIONS:
        raise FileFormatError(f"{path}: library version {version!r} is not supported (this ecco_sdk reads 1)")
    raw_examples = data["examples"]
    if not isinstance(raw_examples, list) or not raw_examples:
        raise FileFormatError(f"{path}: 'examples' must be a non-empty list")
    examples = [parse_example(raw, i, path) for i, raw in enumerate(raw_examples)]
    return Library(examples=examples, path=path, version=int(version))


def load_library(path: str | Path | None = None) -> Library:
    """Read and validate a library file (default: the one shipped with ecco_sdk).

    Args:
        path: a JSON library file; None reads `default_library_path`.

    Returns:
        The validated `Library`.

    Raises:
        InputError: the given file does not exist.
        ConfigurationError: the built-in library is missing (a broken install).
        FileFormatError: the file is not a regular file, is over 64 MiB, is not UTF-8 JSON, or does not
            validate (see `parse_library`).
    """
    p = Path(path) if path is not None else default_library_path()
    if not p.exists():
        if path is None:
            raise ConfigurationError(
                f"the built-in example library {p} is missing; reinstall ecco_sdk or pass library=<path to a JSON file>"
            )
        raise InputError(f"example library {p} does not exist; pass the path of a JSON library file")
    # Bounded like ecco_sdk.load: no device or oversized file, no deep nesting, no lone surrogates.
    with open_regular(p, MAX_LIBRARY_BYTES) as fp:
        data = read_json(fp.read(MAX_LIBRARY_BYTES + 1), f"example library {p}")
    return parse_library(data, str(p))


def as_library(library: Library | str | Path | Sequence[Example] | None) -> Library:
    """Accept a Library, a path, a list of examples, or None (the built-in library).

    Args:
        library: a `Library` (returned as is), a path to a JSON file, a non-empty list of `Example`, or None.

    Returns:
        The `Library`.

    Raises:
        InputError: a list holds something other than examples, or is empty; or the file does not exist.
        FileFormatError: the file does not validate (see `load_library`).
    """
    if isinstance(library, Library):
        return library
    if library is None or isinstance(library, (str, Path)):
        return load_library(library)
    examples = list(library)
    if not examples or not all(isinstance(ex, Example) for ex in examples):
        raise InputError("library must be a Library, a path to a JSON file, or a non-empty list of Example")
    return Library(examples=examples)
