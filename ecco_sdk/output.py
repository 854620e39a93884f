"""`OutputSeq`: one run of a model as plain data (tokens, candidates, hidden states, activations, attributions).

It is what every analysis reads and what the app sends over the wire. It round-trips exactly through
`save`/`load` (JSON metadata + compressed npz in one zip file) and through `to_dict` for web APIs.
Analyses that need the model's weights (the logit lens, attribution) use the `LM` that made it,
kept as an unserialized back-reference; after `load`, pass `lm=` to reattach one.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import FileFormatError, InputError

if TYPE_CHECKING:
    from .attribution import PrimaryAttribution
    from .lm import LM

FORMAT = "ecco_sdk.OutputSeq"
FORMAT_VERSION = 1
_ARRAY_FIELDS = (
    "token_ids",
    "candidate_ids",
    "candidate_probs",
    "hidden_states",
    "activations",
    "encoder_hidden_states",
    "encoder_activations",
    "attention",
)


class Candidate(NamedTuple):
    """One candidate next token at one generation step."""

    token: str
    token_id: int
    prob: float


@dataclass(eq=False)
class OutputSeq:
    """A model run: the token sequence, per-step candidates, and everything captured inside the model.

    Positions index `tokens`. For causal and encoder models `hidden_states` is (layers + 1, positions,
    hidden) and `activations` (layers, neurons, positions) over every position, prompt and generated.
    For encoder-decoder (T5-style) models `tokens` is the encoder input followed by the decoder tokens
    (start token, then generated ones); `hidden_states`/`activations` cover the decoder positions
    (`tokens[n_input_tokens:]`) and `encoder_hidden_states`/`encoder_activations` the encoder ones.
    `candidates[i]` lists the top-k tokens of the model's own distribution (temperature 1, before any
    sampling filter) at generation step i, which produced `tokens[generated_positions[i]]`.
    """

    model_name: str
    kind: str
    token_ids: np.ndarray
    tokens: list[str]
    n_input_tokens: int
    n_generated: int = 0
    candidate_ids: np.ndarray | None = None
    candidate_tokens: list[list[str]] = field(default_factory=list)
    candidate_probs: np.ndarray | None = None
    hidden_states: np.ndarray | None = None
    activations: np.ndarray | None = None
    activation_layers: list[int] | None = None
    encoder_hidden_states: np.ndarray | None = None
    encoder_activations: np.ndarray | None = None
    attention: np.ndarray | None = None
    attributions: dict[str, PrimaryAttribution] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    lm: LM | None = field(default=None, repr=False)

    # ----- derived views -------------------------------------------------------------------------
    @property
    def generated_positions(self) -> list[int]:
        """Positions (indices into `tokens`) of the generated tokens, one per generation step."""
        n = len(self.tokens)
        return list(range(n - self.n_generated, n))

    @property
    def input_tokens(self) -> list[str]:
        """The prompt's tokens."""
        return self.tokens[: self.n_input_tokens]

    @property
    def output_tokens(self) -> list[str]:
        """The generated tokens."""
        return [self.tokens[p] for p in self.generated_positions]

    @property
    def output_text(self) -> str:
        """The generated text."""
        return "".join(self.output_tokens)

    @property
    def text(self) -> str:
        """Prompt and generation as one string (encoder-decoder: the decoder side)."""
        if self.kind == "seq2seq":
            return "".join(self.output_tokens)
        return "".join(self.tokens)

    @property
    def candidates(self) -> list[list[Candidate]]:
        """Per generation step, the top-k candidate tokens with their probabilities."""
        if self.candidate_ids is None or self.candidate_probs is None:
            return []
        return [
            [Candidate(t, int(i), float(p)) for t, i, p in zip(toks, ids, probs)]
            for toks, ids, probs in zip(self.candidate_tokens, self.candidate_ids, self.candidate_probs)
        ]

    def _require_lm(self) -> LM:
        if self.lm is None:
            raise InputError(
                "this analysis needs the model's weights but this OutputSeq has no model attached; "
                "use ecco_sdk.load(path, lm=ecco_sdk.from_pretrained(out.model_name)) or out.attach(lm)"
            )
        return self.lm

    def attach(self, lm: LM) -> OutputSeq:
        """Reattach the `LM` that made this run, for analyses that need weights."""
        self.lm = lm
        return self

    # ----- analyses (original ecco names; the work lives in the analysis modules) -----------------
    def primary_attributions(self, attr_method: str = "ig", style: str = "minimal", **kw: Any):
        """Input saliency for each generated token, as computed at generation time (see attribution.py)."""
        from .attribution import primary_attributions_view

        return primary_attributions_view(self, attr_method, style=style, **kw)

    def layer_predictions(self, position: int | None = None, topk: int = 10, layer: int | None = None, **kw: Any):
        """What each layer would predict at a position (logit lens; see lens.py)."""
        from .lens import layer_predictions

        return layer_predictions(self, position=position, topk=topk, layer=layer, **kw)

    def rankings(self, **kw: Any):
        """How each layer ranked each generated token (logit lens; see lens.py)."""
        from .lens import rankings

        return rankings(self, **kw)

    def rankings_watch(self, watch: Sequence[str | int], position: int | None = None, **kw: Any):
        """How each layer ranked a few watched candidate tokens at one position (see lens.py)."""
        from .lens import rankings_watch

        return rankings_watch(self, watch=watch, position=position, **kw)

    def run_nmf(
        self,
        n_components: int = 4,
        from_layer: int | None = None,
        to_layer: int | None = None,
        stack: str = "main",
        **kw: Any,
    ):
        """Factorize FFN activations into groups of neurons that fire together (see factors.py)."""
        from .factors import run_nmf

        acts, tokens, n_input = self.stack_view(stack)
        return run_nmf(
            acts,
            tokens,
            n_components=n_components,
            from_layer=from_layer,
            to_layer=to_layer,
            n_input_tokens=n_input,
            **kw,
        )

    def view(self):
        """The generated text with each step's candidate tokens and probabilities (self-contained HTML)."""
        from .render import sequence_view

        if self.n_generated == 0:
            raise InputError("this run generated nothing, so there are no candidates to show; use lm.generate(...)")
        return sequence_view(
            self.tokens, len(self.tokens) - self.n_generated, self.candidate_tokens, self.candidate_probs
        )

    def layer_similarity(self, method: str = "cka", stack: str = "main", **kw: Any):
        """Similarity of every pair of layers' FFN activations (layers x layers array; see similarity.py)."""
        from .similarity import layer_similarity

        acts, _, _ = self.stack_view(stack)
        return layer_similarity(acts, method=method, **kw)

    def stack_view(self, stack: str = "main") -> tuple[np.ndarray, list[str], int]:
        """FFN activations of one stack with the tokens at its positions and how many of them are input."""
        if stack not in ("main", "encoder") or (stack == "encoder" and self.kind != "seq2seq"):
            raise InputError(f"stack must be 'main' (or 'encoder' for encoder-decoder models), got {stack!r}")
        if stack == "encoder":
            acts, tokens, n_input = self.encoder_activations, self.input_tokens, self.n_input_tokens
        elif self.kind == "seq2seq":
            acts, tokens, n_input = self.activations, self.tokens[self.n_input_tokens :], 0
        else:
            acts, tokens, n_input = self.activations, self.tokens, self.n_input_tokens
        if acts is None:
            raise InputError(
                "this run has no FFN activations; load the model with from_pretrained(name, activations=True)"
            )
        if self.activation_layers is not None and self.activation_layers != list(range(acts.shape[0])):
            raise InputError(
                f"this run captured only layers {self.activation_layers}; factor analyses need every layer, so "
                "load the model without activation_layers"
            )
        return acts, tokens, n_input

    # ----- serialization ------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        skip = set(_ARRAY_FIELDS) | {"attributions", "lm"}
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        meta["attributions"] = {k: a.to_parts()[0] for k, a in self.attributions.items()}
        return meta

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """JSON-serializable view for web APIs; big arrays only as shapes unless `full`."""
        out = _jsonable(self._meta())
        out["token_ids"] = self.token_ids.tolist()
        out["generated_positions"] = self.generated_positions
        out["candidates"] = [[c._asdict() for c in step] for step in self.candidates]
        out["attributions"] = {k: _jsonable(a.to_dict()) for k, a in self.attributions.items()}
        for name in _ARRAY_FIELDS[3:]:
            arr = getattr(self, name)
            if arr is None:
                continue
            out[f"{name}_shape"] = list(arr.shape)
            if full:
                out[name] = arr.tolist()
        return out

    def save(self, path: str | Path) -> Path:
        """Write this run to one file (a zip of meta.json and arrays.npz) that `ecco_sdk.load` reads back."""
        path = Path(path)
        arrays = {n: getattr(self, n) for n in _ARRAY_FIELDS if getattr(self, n) is not None}
        for key, attr in self.attributions.items():
            for name, arr in attr.to_parts()[1].items():
                arrays[f"attr/{key}/{name}"] = arr
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        meta = {"format": FORMAT, "version": FORMAT_VERSION, **_jsonable(self._meta())}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(meta))
            zf.writestr("arrays.npz", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, lm: LM | None = None) -> OutputSeq:
        """Read a file written by `save`; a damaged or foreign file raises FileFormatError."""
        from .attribution import PrimaryAttribution

        path = Path(path)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        try:
            with zipfile.ZipFile(path) as zf:
                meta = json.loads(zf.read("meta.json"))
                with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
            raise FileFormatError(f"{path} is not a readable ecco_sdk file ({type(err).__name__}: {err})") from err
        if meta.get("format") != FORMAT:
            raise FileFormatError(f"{path} is not an ecco_sdk OutputSeq file (format={meta.get('format')!r})")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise FileFormatError(f"{path} was written by a newer ecco_sdk (format version {meta['version']}); upgrade")
        attr_meta = meta.pop("attributions", {})
        for k in ("format", "version"):
            meta.pop(k)
        try:
            attributions = {
                key: PrimaryAttribution.from_parts(
                    m, {n.split("/", 2)[2]: a for n, a in arrays.items() if n.startswith(f"attr/{key}/")}
                )
                for key, m in attr_meta.items()
            }
            plain = {n: arrays.get(n) for n in _ARRAY_FIELDS}
            if plain["token_ids"] is None:
                raise KeyError("token_ids")
            return cls(**meta, **plain, attributions=attributions, lm=lm)
        except (KeyError, TypeError) as err:
            raise FileFormatError(f"{path} is missing or has unexpected fields ({err})") from err

    def __repr__(self) -> str:
        parts = [
            f"model={self.model_name!r}",
            self.kind,
            f"{len(self.tokens)} tokens ({self.n_input_tokens} input, {self.n_generated} generated)",
        ]
        for name in _ARRAY_FIELDS[3:]:
            arr = getattr(self, name)
            if arr is not None:
                parts.append(f"{name}{tuple(arr.shape)}")
        if self.attributions:
            parts.append("attributions: " + ", ".join(self.attributions))
        text = "".join(self.tokens)
        preview = text if len(text) <= 60 else text[:57] + "..."
        return f"OutputSeq({', '.join(parts)}; text={preview!r})"


@dataclass
class BatchOutput(Sequence[OutputSeq]):
    """A batched forward pass, one `OutputSeq` per text with padding positions removed."""

    sequences: list[OutputSeq]

    def __getitem__(self, i):  # type: ignore[override]
        return self.sequences[i]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[OutputSeq]:
        return iter(self.sequences)

    def activations_concat(self) -> np.ndarray:
        """All texts' FFN activations side by side: (layers, neurons, total positions), for corpus analyses."""
        acts = [s.activations for s in self.sequences]
        if any(a is None for a in acts):
            raise InputError("this batch has no activations; load the model with activations=True")
        return np.concatenate(acts, axis=-1)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """JSON-serializable view."""
        return {"sequences": [s.to_dict(full=full) for s in self.sequences]}

    def __repr__(self) -> str:
        lens = [len(s.tokens) for s in self.sequences]
        return f"BatchOutput({len(self.sequences)} sequences, tokens per sequence {lens})"


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples into JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def load(path: str | Path, lm: LM | None = None) -> OutputSeq:
    """Read an `OutputSeq` saved with `OutputSeq.save`."""
    return OutputSeq.load(path, lm=lm)
