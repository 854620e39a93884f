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
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .bounded_io import (
    MAX_LOAD_BYTES,
    ArraySpec,
    ByteBudget,
    open_regular,
    open_zip,
    read_json,
    read_member,
    read_npz,
    short,
)
from .checks import check_int, is_int
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
    """One candidate next token at one generation step.

    Args:
        token: its display string.
        token_id: its id.
        prob: its probability under the model's own distribution (temperature 1).
    """

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

    Args:
        model_name: the name the model was loaded by.
        kind: 'causal', 'encoder' or 'seq2seq'.
        token_ids: (positions,) int64 ids of `tokens`.
        tokens: display string of every position.
        n_input_tokens: how many positions are the prompt (the encoder input for seq2seq).
        n_generated: how many positions were generated (or teacher-forced).
        candidate_ids: (steps, k) ids of each step's top-k candidates.
        candidate_tokens: their display strings.
        candidate_probs: (steps, k) their probabilities.
        hidden_states: (layers + 1, positions, hidden) residual-stream states.
        activations: (layers, neurons, positions) FFN neuron activations.
        activation_layers: the layers `activations` holds, when not all were captured.
        encoder_hidden_states: seq2seq only: the encoder's states.
        encoder_activations: seq2seq only: the encoder's FFN activations.
        attention: (layers, heads, positions, positions) attention weights, when asked for.
        attributions: input saliency by method key (see `attribution.attribute_output`).
        generation: sampling settings and timing of the run.
        meta: the adapter's description and the weights' source.
        lm: the `LM` that made the run (not saved); analyses that need weights use it.
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

    def require_lm(self) -> LM:
        """The `LM` that made this run, for analyses that need weights; a clear error when none is attached.

        Returns:
            The attached `LM`.

        Raises:
            InputError: no model is attached (e.g. after `load` without `lm=`).
        """
        if self.lm is None:
            raise InputError(
                "this analysis needs the model's weights but this OutputSeq has no model attached; "
                "use ecco_sdk.load(path, lm=ecco_sdk.from_pretrained(out.model_name)) or out.attach(lm)"
            )
        return self.lm

    def attach(self, lm: LM) -> OutputSeq:
        """Reattach the `LM` that made this run, for analyses that need weights.

        Args:
            lm: the model the run was made with (e.g. `from_pretrained(out.model_name)`).

        Returns:
            This run, for chaining.
        """
        self.lm = lm
        return self

    # ----- analyses (original ecco names; the work lives in the analysis modules) -----------------
    def primary_attributions(self, attr_method: str = "ig", style: str = "minimal", **kw: Any):
        """Input saliency for each generated token, computed now if generation did not (see attribution.py).

        Args:
            attr_method: the saliency method ("ig", "saliency", "grad_x_input", "ablation", or an alias).
            style: "minimal" (one target at a time) or "detailed" (every target's scores).
            **kw: ignore_tokens, aggregation ("l2" or "sum"), target, and options for computing the attribution.

        Returns:
            The saliency visual (self-contained HTML).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .attribution import primary_attributions_view

        return primary_attributions_view(self, attr_method, style=style, **kw)

    def layer_predictions(self, position: int | None = None, topk: int = 10, layer: int | None = None, **kw: Any):
        """What each layer would predict at a position (logit lens; see lens.py).

        Args:
            position: the position whose next token is predicted (None: the last generated token's).
            topk: how many tokens to list per layer.
            layer: one layer only (None: every layer).
            **kw: include_embeddings (also unembed the input embeddings).

        Returns:
            A `lens.LayerPredictions` (ids, tokens and probabilities per layer; `.figure()` draws it).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .lens import layer_predictions

        return layer_predictions(self, position=position, topk=topk, layer=layer, **kw)

    def rankings(self, **kw: Any):
        """How each layer ranked each generated token (logit lens; see lens.py).

        Args:
            **kw: positions (default: the generated ones; "all" for every position) and include_embeddings.

        Returns:
            A `lens.Rankings` (rank and probability of each actual token under each layer).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .lens import rankings

        return rankings(self, **kw)

    def rankings_watch(self, watch: Sequence[str | int], position: int | None = None, **kw: Any):
        """How each layer ranked a few watched candidate tokens at one position (see lens.py).

        Args:
            watch: the tokens to follow, as text (each exactly one token, e.g. " is") or ids.
            position: the position whose next token is ranked (None: the last generated token's).
            **kw: include_embeddings.

        Returns:
            A `lens.RankingsWatch` (rank and probability of each watched token under each layer).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .lens import rankings_watch

        return rankings_watch(self, watch=watch, position=position, **kw)

    def layer_attributions(self, target: int = -1, method: str = "grad_x_act", **kw: Any):
        """How much each position's hidden state at each layer matters to one generated token (layer_attribution.py).

        Args:
            target: the generated token to explain, as an index into the generated tokens (-1: the last).
            method: the layer attribution method (e.g. "grad_x_act").
            **kw: target_kind, foil, scope, baseline, n_steps, layers, internal_batch_size.

        Returns:
            A `layer_attribution.LayerAttribution` (layers x positions scores).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .layer_attribution import layer_attributions

        return layer_attributions(self, target=target, method=method, **kw)

    def run_nmf(
        self,
        n_components: int = 4,
        from_layer: int | None = None,
        to_layer: int | None = None,
        stack: str = "main",
        **kw: Any,
    ):
        """Factorize FFN activations into groups of neurons that fire together (see factors.py).

        Args:
            n_components: how many neuron groups (factors) to find.
            from_layer: first layer used (None: 0).
            to_layer: layer after the last one used (None: all).
            stack: "main", or "encoder" for the encoder of an encoder-decoder model.
            **kw: the other `factors.run_nmf` options (negative, normalize, seed, max_iter, ...).

        Returns:
            A `factors.NMFResult` (factors over the positions, and each factor's neurons).
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
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
        """The generated text with each step's candidate tokens and probabilities (self-contained HTML).

        Returns:
            The visual; it shows itself in a notebook and has `.html` and `.save(path)`.
        """
        # Function-level: ecco_sdk.render loads matplotlib (0.7 s measured), which a run without figures never needs.
        from .render import sequence_view

        if self.n_generated == 0:
            raise InputError("this run generated nothing, so there are no candidates to show; use lm.generate(...)")
        return sequence_view(
            self.tokens, len(self.tokens) - self.n_generated, self.candidate_tokens, self.candidate_probs
        )

    def layer_similarity(self, method: str = "cka", stack: str = "main", **kw: Any):
        """Similarity of every pair of layers' FFN activations (see similarity.py).

        Args:
            method: "cka", "cca", "svcca" or "pwcca".
            stack: "main", or "encoder" for the encoder of an encoder-decoder model.
            **kw: the method's options (svcca: keep_variance, n_dims; cka: kernel, sigma, debiased).

        Returns:
            A (layers, layers) float array of similarities in [0, 1].
        """
        # Layer exception (.importlinter): a convenience method calling the analysis above output.
        from .similarity import layer_similarity

        acts, _, _ = self.stack_view(stack)
        return layer_similarity(acts, method=method, **kw)

    def stack_view(self, stack: str = "main") -> tuple[np.ndarray, list[str], int]:
        """FFN activations of one stack with the tokens at its positions and how many of them are input.

        Args:
            stack: "main", or "encoder" for the encoder of an encoder-decoder model.

        Returns:
            (activations shaped (layers, neurons, positions), their tokens, how many of them are input).
        """
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
        """JSON-serializable view for web APIs; big arrays only as shapes unless `full`.

        Args:
            full: include the big arrays (hidden states, activations, attention) as nested lists.

        Returns:
            A dict of JSON types.
        """
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
        """Write this run to one file (a zip of meta.json and arrays.npz) that `ecco_sdk.load` reads back.

        Args:
            path: where to write (by convention ending in .ecco).

        Returns:
            The path written.
        """
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
    def load(cls, path: str | Path, lm: LM | None = None, *, max_bytes: int = MAX_LOAD_BYTES) -> OutputSeq:
        """Read a file written by `save`, refusing anything damaged, foreign, inconsistent or too big.

        Args:
            path: the .ecco file.
            lm: the `LM` to attach for analyses that need weights (optional).
            max_bytes: limit on the file's size and, separately, on the arrays it inflates to (default 512 MiB);
                meta.json may hold at most max_bytes // 16.

        Returns:
            The run. Raises FileFormatError naming the problem (InputError if the file does not exist).
        """
        # Layer exception (.importlinter): the attributions a run holds are the attribution analysis's dataclass.
        from .attribution import PrimaryAttribution

        path, where = Path(path), str(path)
        meta, arrays = _read_parts(path, int(max_bytes))
        attr_meta = meta.pop("attributions", {})
        plain = {n: arrays.pop(n, None) for n in _ARRAY_FIELDS}
        grouped = _attribution_arrays(arrays, attr_meta, where)
        try:
            attributions = {}
            for key, m in attr_meta.items():
                _check_target_positions(key, grouped[key]["target_positions"], len(meta["tokens"]), where)
                attributions[key] = PrimaryAttribution.from_parts(m, grouped[key])
            return cls(**meta, **plain, attributions=attributions, lm=lm)
        except (KeyError, TypeError) as err:
            raise FileFormatError(f"{where} is missing or has unexpected fields ({short(str(err))})") from err

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
    """A batched forward pass, one `OutputSeq` per text with padding positions removed.

    Args:
        sequences: one run per text, in input order.
    """

    sequences: list[OutputSeq]

    def __getitem__(self, i):  # type: ignore[override]
        return self.sequences[i]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[OutputSeq]:
        return iter(self.sequences)

    def activations_concat(self) -> np.ndarray:
        """All texts' FFN activations side by side, for corpus analyses.

        Returns:
            (layers, neurons, total positions) float array, texts in input order.
        """
        acts = [s.activations for s in self.sequences]
        if any(a is None for a in acts):
            raise InputError("this batch has no activations; load the model with activations=True")
        return np.concatenate(acts, axis=-1)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """JSON-serializable view.

        Args:
            full: include each run's big arrays as nested lists (see `OutputSeq.to_dict`).

        Returns:
            {"sequences": [one dict per run]}.
        """
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


def load(path: str | Path, lm: LM | None = None, *, max_bytes: int = MAX_LOAD_BYTES) -> OutputSeq:
    """Read an `OutputSeq` saved with `OutputSeq.save`, refusing anything damaged, foreign or too big.

    Args:
        path: the .ecco file.
        lm: the `LM` to attach for analyses that need weights (optional).
        max_bytes: limit on the file's size and on the arrays it inflates to (see `OutputSeq.load`).

    Returns:
        The run.
    """
    return OutputSeq.load(path, lm=lm, max_bytes=max_bytes)


# ----- checks of a loaded file: nothing in it is trusted (see bounded_io) -------------------------
_JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "None": (type(None),)}


def _attribution_fields() -> tuple[set[str], set[str], dict[str, tuple[type, ...] | None]]:
    """(array fields, required fields, JSON types of the other fields) of PrimaryAttribution, from its annotations."""
    # Layer exception (.importlinter): see OutputSeq.load.
    from .attribution import PrimaryAttribution

    arrays, required, types = set(), set(), {}
    for f in fields(PrimaryAttribution):
        if f.default is MISSING and f.default_factory is MISSING:
            required.add(f.name)
        if "ndarray" in str(f.type):
            arrays.add(f.name)
        else:
            names = [t.strip() for t in str(f.type).split("|")]
            kinds = [_JSON_TYPES.get(t, (dict,) if t.startswith("dict") else None) for t in names]
            types[f.name] = None if None in kinds else tuple(k for ks in kinds for k in ks)  # None: not checked
    return arrays, required, types


def _read_parts(path: Path, max_bytes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """meta.json and the arrays of a saved file, read within `max_bytes`; every check that needs no array data
    (types, counts, shapes against the tokens and each other) runs before any array is allocated."""
    where = str(path)
    with open_regular(path, max_bytes) as fp, open_zip(fp, where, allowed=16) as zf:
        meta_bytes = read_member(zf, "meta.json", ByteBudget(max(max_bytes // 16, 1), where), where)
        meta = read_json(meta_bytes, f"{where}: meta.json")
        _check_header(meta, where)
        npz = read_member(zf, "arrays.npz", ByteBudget(max_bytes, where), where)
    for key in ("format", "version"):
        meta.pop(key)

    def check(specs: dict[str, ArraySpec]) -> None:
        _check_run(meta, specs, where)
        attr_meta = meta.get("attributions", {})
        grouped = _attribution_arrays({k: v for k, v in specs.items() if k.startswith("attr/")}, attr_meta, where)
        for key, m in attr_meta.items():
            _check_attribution(key, m, grouped[key], len(meta["tokens"]), where)

    what = f"{where} (arrays.npz)"
    return meta, read_npz(npz, ByteBudget(max_bytes, what), what, check=check)


def _check_header(meta: Any, where: str) -> None:
    """The format name and version, and the JSON type of every field, before any field is used."""
    if not isinstance(meta, dict):
        raise FileFormatError(f"{where}: meta.json holds a {type(meta).__name__}, not an object; not an ecco_sdk file")
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{where} is not an ecco_sdk OutputSeq file (format={short(meta.get('format'))})")
    version = check_int(
        meta.get("version"),
        f"{where}: meta.json 'version'",
        minimum=1,
        what="a whole number >= 1",
        error=FileFormatError,
    )
    if version > FORMAT_VERSION:
        raise FileFormatError(f"{where} was written by a newer ecco_sdk (format version {version}); upgrade")
    known = {f.name for f in fields(OutputSeq)} - set(_ARRAY_FIELDS) - {"lm"}
    unknown = sorted(set(meta) - known - {"format", "version"})
    if unknown:
        raise FileFormatError(f"{where}: meta.json has unexpected fields {short(unknown)}")
    missing = [k for k in ("model_name", "kind", "tokens", "n_input_tokens") if k not in meta]
    if missing:
        raise FileFormatError(f"{where}: meta.json lacks {', '.join(missing)}")
    checks = {
        "model_name": (lambda v: isinstance(v, str), "a string"),
        "kind": (lambda v: v in ("causal", "seq2seq", "encoder"), "'causal', 'seq2seq' or 'encoder'"),
        "tokens": (lambda v: _str_list(v) and len(v) > 0, "a non-empty list of strings"),
        "n_input_tokens": (lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
        "n_generated": (lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
        "candidate_tokens": (lambda v: isinstance(v, list) and all(_str_list(r) for r in v), "a list of token lists"),
        "activation_layers": (lambda v: v is None or (isinstance(v, list) and all(map(is_int, v))), "a list of ints"),
        "generation": (lambda v: isinstance(v, dict), "an object"),
        "meta": (lambda v: isinstance(v, dict), "an object"),
        "attributions": (lambda v: isinstance(v, dict) and all(isinstance(m, dict) for m in v.values()), "an object"),
    }
    for key, (ok, wanted) in checks.items():
        if key in meta and not ok(meta[key]):
            raise FileFormatError(f"{where}: meta.json '{key}' must be {wanted}, got {short(meta[key])}")


def _check_run(meta: dict[str, Any], arrays: dict[str, Any], where: str) -> None:
    """Counts and array shapes agree with the tokens and with each other."""
    n, n_in, n_gen = len(meta["tokens"]), meta["n_input_tokens"], meta.get("n_generated", 0)
    if n_in + n_gen > n:
        raise FileFormatError(
            f"{where}: {n_in} input + {n_gen} generated tokens exceed the {n} tokens stored; the file is inconsistent"
        )
    extra = sorted(k for k in arrays if k not in _ARRAY_FIELDS and not k.startswith("attr/"))
    if extra:
        raise FileFormatError(f"{where}: arrays.npz holds unexpected arrays {short(extra)}")
    if "token_ids" not in arrays:
        raise FileFormatError(f"{where}: arrays.npz lacks token_ids; the file is damaged")
    seq2seq = meta["kind"] == "seq2seq"
    main = n - n_in if seq2seq else n
    # field: (ndim, {axis: expected length}, integer dtype?)
    expect: dict[str, tuple[int, dict[int, int], bool]] = {
        "token_ids": (1, {0: n}, True),
        "hidden_states": (3, {1: main}, False),
        "activations": (3, {2: main}, False),
        "encoder_hidden_states": (3, {1: n_in}, False),
        "encoder_activations": (3, {2: n_in}, False),
        "attention": (4, {2: n_in if seq2seq else n, 3: n_in if seq2seq else n}, False),
    }
    for name, (ndim, axes, integer) in expect.items():
        if name in arrays:
            _check_array(arrays[name], name, ndim, axes, integer, where)
    if not seq2seq and any(k in arrays for k in ("encoder_hidden_states", "encoder_activations")):
        raise FileFormatError(f"{where}: a {meta['kind']} run holds encoder arrays; the file is inconsistent")
    layers = meta.get("activation_layers")
    if layers is not None and "activations" in arrays and len(layers) != arrays["activations"].shape[0]:
        raise FileFormatError(
            f"{where}: activation_layers lists {len(layers)} layers but activations hold "
            f"{arrays['activations'].shape[0]}"
        )
    _check_candidates(meta.get("candidate_tokens", []), arrays, n_gen, where)


def _check_candidates(tokens: list[list[str]], arrays: dict[str, Any], n_gen: int, where: str) -> None:
    ids, probs = arrays.get("candidate_ids"), arrays.get("candidate_probs")
    if ids is None and probs is None:
        if tokens:
            raise FileFormatError(f"{where}: candidate_tokens are stored without candidate_ids/candidate_probs")
        return
    if ids is None or probs is None:
        raise FileFormatError(f"{where}: arrays.npz holds only one of candidate_ids and candidate_probs")
    _check_array(ids, "candidate_ids", 2, {}, True, where)
    _check_array(probs, "candidate_probs", 2, {0: ids.shape[0], 1: ids.shape[1]}, False, where)
    if ids.shape[0] > n_gen or len(tokens) != ids.shape[0] or any(len(r) != ids.shape[1] for r in tokens):
        raise FileFormatError(
            f"{where}: candidates of shape {ids.shape} do not match {n_gen} generated tokens and "
            f"{len(tokens)} candidate_tokens rows"
        )


def _check_array(
    arr: np.ndarray | ArraySpec, name: str, ndim: int, axes: dict[int, int], integer: bool, where: str
) -> None:
    if arr.ndim != ndim or any(arr.shape[a] != n for a, n in axes.items()):
        want = ", ".join(f"axis {a} = {n}" for a, n in axes.items())
        raise FileFormatError(
            f"{where}: {name} has shape {arr.shape}; expected {ndim} dimensions{' with ' + want if want else ''}"
        )
    if integer and arr.dtype.kind not in "iu":
        raise FileFormatError(f"{where}: {name} has dtype {arr.dtype}; expected integers")


def _attribution_arrays(arrays: dict[str, Any], attr_meta: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Group 'attr/<key>/<name>' arrays by key, refusing arrays of attributions meta.json does not list."""
    grouped: dict[str, dict[str, Any]] = {key: {} for key in attr_meta}
    for name, arr in arrays.items():
        _, key, part = [*name.split("/", 2), "", ""][:3]
        if key not in grouped or part not in _attribution_fields()[0]:
            raise FileFormatError(f"{where}: arrays.npz holds {short(name)}, which meta.json does not describe")
        grouped[key][part] = arr
    return grouped


def _check_attribution(key: str, meta: dict[str, Any], arrays: dict[str, Any], n: int, where: str) -> None:
    """One stored attribution: its fields' types and its arrays' shapes against its targets and the tokens."""
    what = f"{where}: attribution {short(key)}"
    array_fields, required, types = _attribution_fields()
    for name, kinds in types.items():
        if name not in meta:
            if name in required:
                raise FileFormatError(f"{what}: '{name}' is missing")
        elif kinds is not None and (not isinstance(meta[name], kinds) or isinstance(meta[name], bool)):
            raise FileFormatError(f"{what}: '{name}' has the wrong type ({short(meta[name])})")
    missing = sorted((required & array_fields) - set(arrays))
    if missing:
        raise FileFormatError(f"{what} lacks arrays {', '.join(missing)}")
    positions = arrays["target_positions"]
    _check_array(positions, f"attribution {key} target_positions", 1, {}, True, where)
    t = positions.shape[0]
    shapes = {"target_ids": (1, {0: t}), "scores_l2": (2, {0: t, 1: n}), "scores_sum": (2, {0: t, 1: n})}
    shapes |= {"raw": (3, {0: t, 1: n}), "foil_ids": (1, {0: t}), "delta": (1, {0: t})}
    for name, (ndim, axes) in shapes.items():
        if name in arrays:
            _check_array(arrays[name], f"attribution {key} {name}", ndim, axes, name.endswith("_ids"), where)


def _check_target_positions(key: str, positions: np.ndarray, n: int, where: str) -> None:
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise FileFormatError(f"{where}: attribution {short(key)}: target positions fall outside the {n} tokens")


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)
