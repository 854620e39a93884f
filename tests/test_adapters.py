"""Architecture adapters are found structurally on eight families, and capture reads the right tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco_sdk
from ecco_sdk.adapters import DEFAULT_CONTEXT_LENGTH, DEFAULT_DECODER_START_ID, AdapterSpec, build_adapter
from tests.conftest import FAMILIES, _tiny_config

EXPECTED_FFN = {
    "gpt2": "mlp.c_proj",
    "llama": "mlp.down_proj",
    "qwen2": "mlp.down_proj",
    "gemma": "mlp.down_proj",
    "gpt_neox": "mlp.dense_4h_to_h",
    "bert": "output.dense",
    "distilbert": "ffn.lin2",
    "t5": "DenseReluDense.wo",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_finds_parts(tiny_model_dir, family):
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), verbose=False)
    d = lm.adapter.describe()
    assert d["hidden_size"] == 32
    for stack in d["stacks"].values():
        assert stack["layers"] == 2
        assert stack["neurons"] == 64
        assert stack["ffn_out"].endswith(EXPECTED_FFN[family])
    if family in ("bert", "distilbert"):
        assert lm.kind == "encoder"
        assert d["stacks"]["main"]["final_norm"] is None  # post-LN blocks: nothing after the last block
    else:
        assert d["stacks"].get("decoder", d["stacks"].get("main"))["final_norm"] is not None
    assert lm.kind == ("seq2seq" if family == "t5" else "encoder" if family in ("bert", "distilbert") else "causal")


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "distilbert"])
def test_lens_reproduces_model_logits(tiny_model_dir, family):
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), verbose=False)
    assert lm.adapter.lens_checked, lm.adapter.notes
    if family == "t5":
        assert lm.adapter.head_scale == pytest.approx(32**-0.5, rel=1e-4)


def test_distilbert_lens_is_refused_not_wrong(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("distilbert"), verbose=False)
    assert not lm.adapter.lens_checked
    out = lm(["a tiny test"])[0]
    with pytest.raises(ecco_sdk.UnsupportedModelError, match="AdapterSpec"):
        out.layer_predictions(position=1)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma", "gpt_neox"])
def test_captured_activations_equal_a_manual_hook(tiny_model_dir, family):
    """Generation with the KV cache records, for every position, what one full forward computes."""
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), verbose=False)
    out = lm.generate("one two three four", generate=4)
    ids = torch.tensor(out.token_ids)[None]
    module = lm.model.get_submodule(lm.adapter.main.blocks_path)[1].get_submodule(lm.adapter.main.ffn_out_path)
    seen = []
    handle = module.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach()))
    try:
        with torch.no_grad():
            full = lm.model(ids, output_hidden_states=True)
    finally:
        handle.remove()
    assert out.activations.shape == (2, 64, len(out.tokens))
    np.testing.assert_allclose(out.activations[1], seen[0][0].T.numpy(), rtol=1e-4, atol=1e-5)
    # hidden state 1 = output of block 0 = HF's hidden_states[1]
    np.testing.assert_allclose(out.hidden_states[1], full.hidden_states[1][0].numpy(), rtol=1e-4, atol=1e-5)


def test_unrecognised_model_names_what_is_missing():
    class NoBlocks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def get_input_embeddings(self):
            return self.emb

    with pytest.raises(ecco_sdk.UnsupportedModelError, match="AdapterSpec\\(blocks="):
        build_adapter(NoBlocks(), "causal")


def test_explicit_spec_overrides_discovery(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    adapter = build_adapter(model, "causal", AdapterSpec(blocks="model.layers", ffn_out="mlp.up_proj"))
    assert adapter.main.ffn_out_path == "mlp.up_proj"
    assert adapter.main.ffn_out[0] is model.model.layers[0].mlp.up_proj


# Where each family's config names its position limit (T5 has relative positions and names none).
POSITION_ATTR = {"gpt2": "n_positions", "llama": "max_position_embeddings", "bert": "max_position_embeddings"}


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert", "t5"])
def test_adapter_holds_the_model_knowledge(tiny_model_dir, family):
    """vocab size, context length, decoder start and softcap are found once, and agree with the model's config."""
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), verbose=False)
    cfg, adapter = lm.model.config, lm.adapter
    assert adapter.vocab_size == cfg.vocab_size == lm.model.get_output_embeddings().weight.shape[0]
    if family in POSITION_ATTR:
        assert adapter.context_length == getattr(cfg, POSITION_ATTR[family]) == 128
    else:  # no position limit in the config, and the tokenizer reports its "no limit" sentinel
        assert lm.tokenizer.model_max_length > 10**7
        assert adapter.context_length == DEFAULT_CONTEXT_LENGTH
    if family == "t5":
        assert adapter.decoder_start_id == cfg.decoder_start_token_id == 0
    else:
        assert adapter.decoder_start_id is None
    assert adapter.logit_softcap is None and getattr(cfg, "final_logit_softcapping", None) is None
    assert lm.context_length == adapter.context_length
    described = adapter.describe()
    assert (described["vocab_size"], described["context_length"]) == (adapter.vocab_size, adapter.context_length)


def _gemma2(**overrides):
    """A tiny random Gemma-2 (the tiny Gemma's sizes), the family that caps its logits."""
    import transformers as tf

    gemma = {k: v for k, v in _tiny_config("gemma", 50).to_dict().items() if k not in ("model_type", "architectures")}
    torch.manual_seed(0)
    return tf.Gemma2ForCausalLM(tf.Gemma2Config(**{**gemma, **overrides}))


def test_adapter_reads_the_softcap_and_limits_of_gemma2():
    model = _gemma2(final_logit_softcapping=30.0)
    adapter = build_adapter(model, "causal")
    assert adapter.logit_softcap == model.config.final_logit_softcapping == 30.0
    assert (adapter.vocab_size, adapter.context_length) == (50, model.config.max_position_embeddings) == (50, 128)


def test_adapter_fallbacks_are_the_documented_ones(tiny_model_dir):
    """A config that names no position limit, and an encoder-decoder config with no start or pad token."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir("t5"))
    model.config.decoder_start_token_id = None
    model.config.pad_token_id = None
    model.generation_config.decoder_start_token_id = None
    adapter = build_adapter(model, "seq2seq")
    assert adapter.decoder_start_id == DEFAULT_DECODER_START_ID == 0
    assert adapter.context_length == DEFAULT_CONTEXT_LENGTH == 4096
    model.generation_config.decoder_start_token_id = 5
    assert build_adapter(model, "seq2seq").decoder_start_id == 5
    tokenizer = type("Tok", (), {"model_max_length": 512})()
    assert build_adapter(model, "seq2seq", tokenizer=tokenizer).context_length == 512
