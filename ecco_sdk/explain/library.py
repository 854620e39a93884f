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
from ..errors import ConfigurationError, FileFormatError, InputError
from .records import MAX_LEVEL, ActivationRecord

SUPPORTED_VERSIONS = (1,)
MAX_LIBRARY_BYTES = 64 * 2**20  # the built-in library is 57 kB; a user library of 100k examples fits
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REQUIRED = ("id", "category", "tokens", "activations", "explanation")


def default_library_path() -> Path:
    """Where the library shipped with ecco_sdk lives."""
    return Path(__file__).resolve().parent / "data" / "examples.json"


@dataclass(frozen=True)
class Example:
    """One hand-checked pattern: what the explainer is shown as a worked example."""

    id: str
    category: str
    tokens: tuple[str, ...]
    activations: tuple[int, ...]
    explanation: str
    source: str = "hand"

    @cached_property
    def record(self) -> ActivationRecord:
        """The example as an activation record (its activations already are 0-10 levels)."""
        return ActivationRecord.from_levels(list(self.tokens), list(self.activations))

    def content_hash(self) -> str:
        """A digest of everything that shapes the prompt, so an edited example is re-embedded."""
        payload = json.dumps(
            [self.category, list(self.tokens), list(self.activations), self.explanation, self.source],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        """The example in the library's JSON form."""
        d = asdict(self)
        d["tokens"] = list(self.tokens)
        d["activations"] = list(self.activations)
        return d


@dataclass
class Library:
    """All examples of one library file, in file order, addressable by id."""

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
        """The example with this id."""
        try:
            return self._by_id[example_id]
        except KeyError:
            raise InputError(f"no example with id {example_id!r} in {self.path or 'the library'}") from None

    @property
    def ids(self) -> list[str]:
        """Example ids in file order."""
        return [ex.id for ex in self.examples]

    def categories(self) -> dict[str, int]:
        """How many examples each category has (to spot thin categories)."""
        counts: dict[str, int] = {}
        for ex in self.examples:
            counts[ex.category] = counts.get(ex.category, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The library in its JSON file form."""
        return {"version": self.version, "examples": [ex.to_dict() for ex in self.examples]}


def _where(path: str, index: int, raw: Any) -> str:
    ident = raw.get("id") if isinstance(raw, dict) else None
    return f"{path}: example #{index}" + (f" (id {ident!r})" if isinstance(ident, str) else "")


def parse_example(raw: Any, index: int = 0, path: str = "library") -> Example:
    """Validate one example dict and build it; the error names the example and the field to fix."""
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
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= MAX_LEVEL:
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
    """Validate a whole library document (already parsed JSON)."""
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
    """Read and validate a library file (default: the one shipped with ecco_sdk)."""
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
    """Accept a Library, a path, a list of examples, or None (the built-in library)."""
    if isinstance(library, Library):
        return library
    if library is None or isinstance(library, (str, Path)):
        return load_library(library)
    examples = list(library)
    if not examples or not all(isinstance(ex, Example) for ex in examples):
        raise InputError("library must be a Library, a path to a JSON file, or a non-empty list of Example")
    return Library(examples=examples)
