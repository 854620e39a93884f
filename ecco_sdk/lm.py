"""`LM`: a loaded model with capture, and `from_pretrained` to get one.

`generate` runs its own token loop over the KV cache so that it can record, at every step, the
candidate distribution and (through capture hooks) every layer's hidden state and FFN activations,
including one last forward over the final generated token that the original ecco never ran.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import capture, models
from .adapters import Adapter, AdapterSpec, cache_kwargs, calibrate_lens
from .checks import check_int, check_text, is_int
from .errors import InputError
from .output import BatchOutput, OutputSeq
from .sampling import SamplingConfig, choose_next

__all__ = ["LM", "from_pretrained"]


class LM:
    """A model ready for ecco_sdk analyses: generation and forward passes that capture what happens inside.

    Made by `from_pretrained`; several `LM` objects may share one loaded model and differ in what they capture.

    Args:
        loaded: the shared model and tokenizer (from `models.load`).
        adapter: where the model keeps its parts, and what it knows about the model (from `build_adapter`).
        activations: capture FFN neuron activations.
        hidden_states: capture every layer's residual-stream state.
        activation_layers: capture FFN activations of these layers only (None: all).
        verbose: show progress bars.
    """

    def __init__(
        self,
        loaded: models.LoadedModel,
        adapter: Adapter,
        *,
        activations: bool = True,
        hidden_states: bool = True,
        activation_layers: Sequence[int] | None = None,
        verbose: bool = True,
    ) -> None:
        self.loaded = loaded
        self.adapter = adapter
        self.collect_activations = activations
        self.collect_hidden_states = hidden_states
        self.activation_layers = _check_layers(activation_layers, adapter.main.n_layers)
        self.verbose = verbose

    # ----- properties ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The name the model was loaded by."""
        return self.loaded.name

    @property
    def kind(self) -> str:
        """'causal', 'encoder' or 'seq2seq'."""
        return self.loaded.kind

    @property
    def model(self) -> torch.nn.Module:
        """The underlying transformers model (shared across LMs in this process)."""
        return self.loaded.model

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer."""
        return self.loaded.tokenizer

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embeddings."""
        return self.adapter.input_embeddings.weight.device

    @property
    def n_layers(self) -> int:
        """Blocks in the main stack (the decoder for encoder-decoder models)."""
        return self.adapter.main.n_layers

    @property
    def n_neurons(self) -> int:
        """FFN neurons per block."""
        return self.adapter.main.n_neurons

    @property
    def context_length(self) -> int:
        """The longest sequence the model accepts (positions), as the adapter found it."""
        return self.adapter.context_length

    def __repr__(self) -> str:
        d = self.adapter.describe()
        stacks = ", ".join(f"{k}: {v['layers']} layers x {v['neurons']} neurons" for k, v in d["stacks"].items())
        return f"LM({self.name!r}, {self.kind}, {type(self.model).__name__}, {stacks}, device={self.device})"

    # ----- tokens -------------------------------------------------------------------------------
    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Readable display string of each token id (decoded one by one, so leading spaces show).

        Args:
            ids: token ids.

        Returns:
            One string per id.
        """
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def token_id(self, token: str | int, what: str = "token") -> int:
        """The id of one token, given as its id or as text that must encode to exactly one token.

        Args:
            token: a token id, or its text (often with a leading space, e.g. " Paris").
            what: what the caller calls the token, for the error message (e.g. "foil", "watch token").

        Returns:
            The token id.

        Raises:
            InputError: the text is not exactly one token.
        """
        if is_int(token):
            return int(token)
        ids = self.tokenizer(str(token), add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise InputError(
                f"{what} {token!r} is {len(ids)} tokens {self.token_strings(ids)}; give a single token "
                "(often with a leading space, e.g. ' Paris') or its id"
            )
        return int(ids[0])

    def encode(self, text: str, add_special_tokens: bool = True) -> torch.Tensor:
        """Token ids of one text, checked for emptiness.

        Args:
            text: the text.
            add_special_tokens: let the tokenizer add its special tokens (BOS, [CLS], ...).

        Returns:
            A (1, tokens) tensor of ids.
        """
        check_text(text)
        ids = self.tokenizer(text, add_special_tokens=add_special_tokens, return_tensors="pt").input_ids
        if ids.shape[1] == 0:
            raise InputError("text produced no tokens; pass at least one word")
        return ids

    def check_length(self, n_tokens: int, extra: int = 0) -> None:
        """Refuse a sequence longer than the model's context, before any work is done.

        Args:
            n_tokens: tokens in the input.
            extra: tokens still to be generated.
        """
        if n_tokens + extra > self.context_length:
            raise InputError(
                f"{n_tokens} input tokens + {extra} to generate exceed the model's context of "
                f"{self.context_length} tokens; shorten the text or generate fewer tokens"
            )

    def _recording(self) -> capture.Recording:
        return capture.Recording(
            hidden_states=self.collect_hidden_states,
            activations=self.collect_activations,
            activation_layers=self.activation_layers,
        )

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (getattr(self.model, "generation_config", None), self.model.config, self.tokenizer):
            value = getattr(src, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids

    # ----- generation ---------------------------------------------------------------------------
    def generate(
        self,
        text: str,
        generate: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        topk_candidates: int = 10,
        attribution: Sequence[str] | str | None = None,
        attention: bool = False,
        stop_at_eos: bool = True,
        **attribution_kwargs: Any,
    ) -> OutputSeq:
        """Generate `generate` tokens after `text`, recording candidates and the model's insides at every step.

        Args:
            text: the prompt.
            generate: how many tokens to generate (at least 1).
            do_sample: sample the next token instead of taking the most likely one (greedy).
            temperature: divides the logits before sampling (sampling only).
            top_k: sample only among the k most likely tokens (sampling only; None: no limit).
            top_p: sample only within the smallest set of tokens whose probability reaches p (sampling only).
            seed: seed for sampling, so that a run can be repeated.
            topk_candidates: how many candidate tokens to record at each step.
            attribution: saliency methods ("ig", "saliency", "grad_x_input", "ablation", or an alias)
                computed for every generated token once generation ends.
            attention: also record attention weights (needs `from_pretrained(name, attention=True)`).
            stop_at_eos: stop early when the model generates an end-of-sequence token.
            **attribution_kwargs: options for the attribution methods (see `attribution.attribute_output`).

        Returns:
            The run: tokens, per-step candidates, hidden states, activations (and attributions, attention).
        """
        if self.kind == "encoder":
            raise InputError(f"{self.name!r} is an encoder (BERT-style) model and cannot generate; call lm(texts)")
        generate = check_int(generate, "generate", minimum=1, hint=" (tokens to generate)")
        sampling = SamplingConfig.make(do_sample, temperature, top_k, top_p, seed)
        vocab = self.adapter.vocab_size
        topk_candidates = check_int(topk_candidates, "topk_candidates", minimum=1, maximum=vocab)
        if attention and self.model.config._attn_implementation != "eager":
            raise InputError(
                "attention weights need eager attention; load the model with "
                "ecco_sdk.from_pretrained(name, attention=True)"
            )
        methods = _attribution_methods(attribution)
        ids = self.encode(text)
        self.check_length(ids.shape[1], generate)
        start = time.perf_counter()
        if self.kind == "seq2seq":
            out = self._generate_seq2seq(ids, generate, sampling, topk_candidates, attention, stop_at_eos)
        else:
            out = self._generate_causal(ids, generate, sampling, topk_candidates, attention, stop_at_eos)
        out.generation.update(sampling.to_dict(), seconds=round(time.perf_counter() - start, 4))
        if methods:
            # Layer exception (.importlinter): this convenience calls an analysis, which sits above lm.
            from .attribution import attribute_output

            attribute_output(self, out, methods, **attribution_kwargs)
        return out

    def _progress(self, total: int) -> tqdm:
        return tqdm(total=total, desc=f"ecco_sdk: generating ({self.name})", disable=not self.verbose, leave=False)

    def forward_kwargs(self) -> dict[str, Any]:
        """Keywords that make a forward compute only the last position's logits, where the model supports it.

        Returns:
            {"logits_to_keep": 1}, or {} for models whose forward lacks that keyword.
        """
        params = inspect.signature(self.model.forward).parameters
        return {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def _generate_causal(self, ids, n_new, sampling, k, attention, stop_at_eos) -> OutputSeq:
        from transformers import DynamicCache  # heavy: transformers adds ~1.5 s to `import ecco_sdk`

        model, dev = self.model, self.device
        ids = ids.to(dev)
        rec = self._recording()
        steps = _StepLog(k)
        attn_rows: list[tuple[torch.Tensor, ...]] = []
        eos = self._eos_ids() if stop_at_eos else set()
        extra = self.forward_kwargs()
        cache = DynamicCache(config=model.config)
        generated: list[int] = []
        with torch.inference_mode(), capture.recording(rec), self._progress(n_new) as bar:
            out = model(input_ids=ids, **cache_kwargs(model, cache), output_attentions=attention, **extra)
            for _ in range(n_new):
                if attention:
                    attn_rows.append(out.attentions)
                logits = out.logits[0, -1].float()
                next_id = choose_next(logits, sampling)
                steps.add(logits, next_id)
                generated.append(next_id)
                bar.update()
                # One more forward over the new token: its activations, and the next step's logits.
                step_ids = torch.tensor([[next_id]], device=dev)
                out = model(input_ids=step_ids, **cache_kwargs(model, cache), output_attentions=attention, **extra)
                if next_id in eos:
                    break
            if attention:
                attn_rows.append(out.attentions)
        all_ids = ids[0].tolist() + generated
        seq = self._sequence(all_ids, ids.shape[1], len(generated), steps, rec, "main")
        if attention:
            seq.attention = _assemble_attention(attn_rows, len(all_ids))
        return seq

    def _generate_seq2seq(self, ids, n_new, sampling, k, attention, stop_at_eos) -> OutputSeq:
        from transformers import DynamicCache, EncoderDecoderCache  # heavy: see _generate_causal

        model, dev = self.model, self.device
        ids = ids.to(dev)
        rec = self._recording()
        steps = _StepLog(k)
        eos = self._eos_ids() if stop_at_eos else set()
        dec_ids = [int(self.adapter.decoder_start_id)]
        cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
        with torch.inference_mode(), capture.recording(rec), self._progress(n_new) as bar:
            enc = model.get_encoder()(input_ids=ids, output_attentions=attention)
            out = model(
                encoder_outputs=enc,
                decoder_input_ids=torch.tensor([dec_ids], device=dev),
                **cache_kwargs(model, cache),
            )
            for _ in range(n_new):
                logits = out.logits[0, -1].float()
                next_id = choose_next(logits, sampling)
                steps.add(logits, next_id)
                dec_ids.append(next_id)
                bar.update()
                out = model(
                    encoder_outputs=enc,
                    decoder_input_ids=torch.tensor([[next_id]], device=dev),
                    **cache_kwargs(model, cache),
                )
                if next_id in eos:
                    break
        all_ids = ids[0].tolist() + dec_ids
        seq = self._sequence(all_ids, ids.shape[1], len(dec_ids) - 1, steps, rec, "decoder")
        seq.encoder_hidden_states = _first_item(rec.stacked("hidden", "encoder"))
        seq.encoder_activations = _ffn_layout(rec.stacked("ffn", "encoder"))
        if attention and enc.attentions:
            seq.attention = torch.stack([a[0] for a in enc.attentions]).float().cpu().numpy()
            seq.meta["attention_scope"] = "encoder self-attention"
        return seq

    def _sequence(self, all_ids, n_input, n_generated, steps, rec, stack) -> OutputSeq:
        cand_ids, cand_probs = steps.arrays()
        return self.new_output(
            all_ids,
            n_input,
            n_generated=int(n_generated),
            candidate_ids=cand_ids,
            candidate_tokens=[self.token_strings(row) for row in cand_ids] if cand_ids is not None else [],
            candidate_probs=cand_probs,
            hidden_states=_first_item(rec.stacked("hidden", stack)),
            activations=_ffn_layout(rec.stacked("ffn", stack)),
        )

    def new_output(self, token_ids: Sequence[int], n_input_tokens: int, **fields: Any) -> OutputSeq:
        """An `OutputSeq` of this model over `token_ids`, with its tokens, model, adapter and capture settings.

        Args:
            token_ids: every token of the run (for encoder-decoder models: the encoder's, then the decoder's).
            n_input_tokens: how many of them are the input.
            **fields: the other `OutputSeq` fields (n_generated, candidates, hidden_states, ...).

        Returns:
            The run, attached to this LM.
        """
        ids = [int(i) for i in token_ids]
        return OutputSeq(
            model_name=self.name,
            kind=self.kind,
            token_ids=np.asarray(ids, dtype=np.int64),
            tokens=self.token_strings(ids),
            n_input_tokens=int(n_input_tokens),
            activation_layers=list(self.activation_layers) if self.activation_layers is not None else None,
            meta={"adapter": self.adapter.describe(), "source": self.loaded.source},
            lm=self,
            **fields,
        )

    # ----- batched forward ----------------------------------------------------------------------
    def __call__(self, texts: str | Sequence[str] | Any, attention: bool = False) -> BatchOutput:
        """Run a padded batch forward over texts (or a tokenizer BatchEncoding); padding is removed from results.

        Args:
            texts: a text, a list of texts, or a tokenizer BatchEncoding (input_ids and attention_mask).
            attention: also record attention weights (needs `from_pretrained(name, attention=True)`).

        Returns:
            One `OutputSeq` per text, with hidden states and activations over its own tokens.
        """
        if self.kind == "seq2seq":
            raise InputError("encoder-decoder models analyse generated text: use lm.generate(text, generate=N)")
        enc = self._batch_encoding(texts)
        input_ids = enc["input_ids"]
        mask = enc.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask
        if int(mask.sum(1).min()) == 0:
            raise InputError("one of the texts is empty; remove it or add text")
        self.check_length(int(input_ids.shape[1]))
        if attention and self.model.config._attn_implementation != "eager":
            raise InputError("attention weights need eager attention; load with from_pretrained(name, attention=True)")
        rec = self._recording()
        inputs = {k: v.to(self.device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
        extra = self.forward_kwargs()
        with torch.inference_mode(), capture.recording(rec):
            out = self.model(**inputs, output_attentions=attention, **extra)
        hidden = rec.stacked("hidden", "main")
        ffn = rec.stacked("ffn", "main")
        seqs = []
        for b in range(input_ids.shape[0]):
            keep = mask[b].bool()
            ids = input_ids[b][keep].tolist()
            seq = self.new_output(
                ids,
                len(ids),
                hidden_states=hidden[:, b][:, keep].numpy() if hidden is not None else None,
                activations=ffn[:, b][:, keep].transpose(1, 2).numpy().copy() if ffn is not None else None,
            )
            if attention and out.attentions:
                seq.attention = torch.stack([a[b][:, keep][:, :, keep] for a in out.attentions]).float().numpy()
            seqs.append(seq)
        return BatchOutput(seqs)

    def _batch_encoding(self, texts: Any) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        if hasattr(texts, "keys") and "input_ids" in texts:
            enc = dict(texts)
            if not isinstance(enc["input_ids"], torch.Tensor):
                enc = {k: torch.as_tensor(v) for k, v in enc.items()}
            if enc["input_ids"].ndim == 1:
                enc = {k: v.unsqueeze(0) for k, v in enc.items()}
            return enc
        if isinstance(texts, bytes | bytearray) or not isinstance(texts, Iterable):
            raise InputError(f"pass a text, a list of texts, or a tokenizer BatchEncoding; got {type(texts).__name__}")
        texts = list(texts)
        if not texts:
            raise InputError("pass a text, a list of texts, or a tokenizer BatchEncoding; got an empty list")
        for i, t in enumerate(texts):
            check_text(t, f"text {i}")
        return dict(self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt"))

    # ----- analyses needing weights --------------------------------------------------------------
    def attribute(
        self, text: str, target: str | Sequence[int], methods: Sequence[str] | str = ("ig",), **kw: Any
    ) -> OutputSeq:
        """Attribute a given continuation `target` of `text` to the input tokens, without generating.

        Args:
            text: the prompt.
            target: the continuation to attribute, as text (e.g. " Paris") or token ids.
            methods: saliency methods ("ig", "saliency", "grad_x_input", "ablation", or an alias).
            **kw: options for the methods (see `attribution.attribute_output`).

        Returns:
            A teacher-forced run of `text` + `target` with the attributions in `attributions`.
        """
        # Layer exception (.importlinter): this convenience calls an analysis, which sits above lm.
        from .attribution import attribute_text

        return attribute_text(self, text, target, methods, **kw)


class _StepLog:
    """Top-k candidates of each generation step, from the model's own (temperature-1) distribution."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.ids: list[torch.Tensor] = []
        self.probs: list[torch.Tensor] = []

    def add(self, logits: torch.Tensor, chosen: int) -> None:
        probs = torch.softmax(logits, dim=-1)
        top = torch.topk(probs, min(self.k, probs.shape[-1]))
        self.ids.append(top.indices.cpu())
        self.probs.append(top.values.cpu())

    def arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.ids:
            return None, None
        return torch.stack(self.ids).numpy().astype(np.int64), torch.stack(self.probs).numpy().astype(np.float32)


def _first_item(stacked: torch.Tensor | None) -> np.ndarray | None:
    """(layers, 1, positions, width) -> (layers, positions, width)."""
    return None if stacked is None else stacked[:, 0].numpy()


def _ffn_layout(stacked: torch.Tensor | None) -> np.ndarray | None:
    """(layers, 1, positions, neurons) -> (layers, neurons, positions), ecco's layout."""
    return None if stacked is None else stacked[:, 0].transpose(1, 2).numpy().copy()


def _assemble_attention(rows: list[tuple[torch.Tensor, ...]], n: int) -> np.ndarray:
    """Stitch per-step attention rows (queries x keys so far) into (layers, heads, n, n)."""
    layers, heads = len(rows[0]), rows[0][0].shape[1]
    full = torch.zeros(layers, heads, n, n)
    q = 0
    for step in rows:
        for layer, a in enumerate(step):
            nq, nk = a.shape[2], a.shape[3]
            full[layer, :, q : q + nq, :nk] = a[0].float().cpu()
        q += step[0].shape[2]
    return full[:, :, :q, :q].numpy()


def _attribution_methods(attribution: Sequence[str] | str | None) -> list[str]:
    if attribution is None:
        return []
    methods = [attribution] if isinstance(attribution, str) else list(attribution)
    # Layer exception (.importlinter): method names are checked before generating, by the analysis that owns them.
    from .attribution import canonical_method

    return [canonical_method(m) for m in methods]


def _check_layers(layers: Sequence[int] | None, n_layers: int) -> list[int] | None:
    if layers is None:
        return None
    out = sorted({int(x) for x in layers})
    bad = [x for x in out if not 0 <= x < n_layers]
    if bad or not out:
        raise InputError(
            f"activation layers {bad or list(layers)} out of range: this model has layers 0..{n_layers - 1}"
        )
    return out


def _probe(lm: LM) -> None:
    """Calibrate the logit lens on a tiny input: unembedding the last block must reproduce the logits."""
    adapter, model = lm.adapter, lm.model
    if adapter.head is None or adapter.lens_checked:
        return
    ids = torch.tensor([[int(i) for i in _probe_ids(lm)]], device=lm.device)
    rec = capture.Recording(activations=False)
    with torch.inference_mode(), capture.recording(rec):
        if lm.kind == "seq2seq":
            start = int(adapter.decoder_start_id)
            out = model(
                input_ids=ids, decoder_input_ids=torch.tensor([[start, *ids[0, :2].tolist()]], device=lm.device)
            )
            stack = "decoder"
        else:
            out = model(input_ids=ids)
            stack = "main"
    hidden = rec.stacked("hidden", stack)
    if hidden is None or getattr(out, "logits", None) is None:
        return
    with torch.inference_mode():
        calibrate_lens(adapter, hidden[-1].to(lm.device), out.logits)


def _probe_ids(lm: LM) -> list[int]:
    ids = lm.tokenizer("The quick brown fox jumps", add_special_tokens=True).input_ids
    return [i % lm.adapter.vocab_size for i in ids[:8]] or [1, 2, 3]


def from_pretrained(
    name: str,
    activations: bool = True,
    *,
    hidden_states: bool = True,
    activation_layers: Sequence[int] | None = None,
    attention: bool = False,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    kind: str | None = None,
    adapter: AdapterSpec | None = None,
    verbose: bool = True,
) -> LM:
    """Load a model by embedded name ('smollm2-135m-instruct', 'minilm-l6'), hub id or folder, ready to analyse.

    Weights are shared by every `LM` in the process that asks for the same model, device and dtype.

    Args:
        name: an embedded model (see `list_models()`), a Hugging Face hub id, or a local folder.
        activations: capture FFN neuron activations.
        hidden_states: capture every layer's residual-stream state.
        activation_layers: capture FFN activations of these layers only (None: all).
        attention: load with eager attention so that runs can record attention weights.
        device: where to put the model ("cpu", "cuda", ...; default "cpu").
        dtype: weight dtype ("float32", "bfloat16", "float16", "auto"; None: the model's default).
        device_map: spread a model too large for one GPU through accelerate (e.g. "auto"); replaces `device`.
        kind: force "causal", "encoder" or "seq2seq" when the config does not say.
        adapter: explicit module paths for an architecture that discovery cannot work out.
        verbose: show progress bars.

    Returns:
        The `LM`, its adapter built, its capture hooks installed and its logit lens calibrated.
    """
    loaded = models.load(
        name, device=device, dtype=dtype, device_map=device_map, attention=attention, kind=kind, verbose=verbose
    )
    with loaded.lock:
        built = loaded.ensure_adapter(adapter)
        capture.install(loaded.model, built)
        lm = LM(
            loaded,
            built,
            activations=activations,
            hidden_states=hidden_states,
            activation_layers=activation_layers,
            verbose=verbose,
        )
        _probe(lm)
    return lm
