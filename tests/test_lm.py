"""Generation with full capture, batched forward, per-call capture, save/load and input errors (tiny models)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

import ecco_sdk


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    return ecco_sdk.from_pretrained(tiny_model_dir("llama"), verbose=False)


def test_generate_records_every_position(llama):
    out = llama.generate("one two three", generate=5, stop_at_eos=False)
    n = len(out.tokens)
    assert out.n_generated == 5 and n == out.n_input_tokens + 5
    assert out.hidden_states.shape == (3, n, 32)
    assert out.activations.shape == (2, 64, n)
    assert np.abs(out.activations[:, :, -1]).sum() > 0  # the last generated token was run too
    assert len(out.candidates) == 5 and len(out.candidates[0]) == 10
    probs = out.candidate_probs
    assert np.all(np.diff(probs, axis=1) <= 0) and np.all(probs.sum(1) <= 1 + 1e-5)
    # greedy: the chosen token is the top candidate at each step
    assert [step[0].token_id for step in out.candidates] == out.token_ids[out.generated_positions].tolist()


def test_candidates_match_a_plain_forward(llama):
    out = llama.generate("one two three", generate=3, stop_at_eos=False)
    ids = torch.tensor(out.token_ids)[None]
    with torch.no_grad():
        probs = torch.softmax(llama.model(ids).logits[0].float(), -1)
    for step, pos in enumerate(out.generated_positions):
        expected = torch.topk(probs[pos - 1], 10)
        assert out.candidate_ids[step].tolist() == expected.indices.tolist()
        np.testing.assert_allclose(out.candidate_probs[step], expected.values.numpy(), rtol=1e-4)


def test_sampling_is_seeded_and_filters(llama):
    a = llama.generate("one two", generate=6, do_sample=True, seed=3, stop_at_eos=False)
    b = llama.generate("one two", generate=6, do_sample=True, seed=3, stop_at_eos=False)
    c = llama.generate("one two", generate=6, do_sample=True, seed=4, top_k=50, stop_at_eos=False)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    assert a.generation["seed"] == 3 and c.generation["top_k"] == 50
    topk1 = llama.generate("one two", generate=4, do_sample=True, top_k=1, seed=9, stop_at_eos=False)
    greedy = llama.generate("one two", generate=4, stop_at_eos=False)
    assert topk1.token_ids.tolist() == greedy.token_ids.tolist()


def test_top_p_keeps_the_nucleus():
    from ecco_sdk.sampling import SamplingConfig, filter_logits

    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = filter_logits(logits, SamplingConfig.make(True, 1.0, None, 0.7, 0))
    assert torch.isfinite(kept).tolist() == [True, True, False, False]
    kept = filter_logits(logits, SamplingConfig.make(True, 1.0, None, 0.5, 0))
    assert torch.isfinite(kept).tolist() == [True, False, False, False]


def test_attention_when_asked(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("llama"), attention=True, verbose=False)
    out = lm.generate("one two three", generate=3, attention=True, stop_at_eos=False)
    n = len(out.tokens)
    assert out.attention.shape == (2, 2, n, n)
    np.testing.assert_allclose(out.attention.sum(-1), 1.0, rtol=1e-4)
    assert np.allclose(np.triu(out.attention[0, 0], 1), 0)


def test_attention_needs_eager(llama):
    with pytest.raises(ecco_sdk.InputError, match="attention=True"):
        llama.generate("one two", attention=True)


def test_seq2seq_generation(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("t5"), verbose=False)
    out = lm.generate("translate this please", generate=3, stop_at_eos=False)
    n_dec = len(out.tokens) - out.n_input_tokens
    assert n_dec == 4  # start token + 3 generated
    assert out.hidden_states.shape == (3, n_dec, 32)
    assert out.activations.shape == (2, 64, n_dec)
    assert out.encoder_activations.shape == (2, 64, out.n_input_tokens)
    assert out.generated_positions == list(range(len(out.tokens) - 3, len(out.tokens)))


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_batch_forward_masks_padding(tiny_model_dir, family):
    lm = ecco_sdk.from_pretrained(tiny_model_dir(family), verbose=False)
    texts = ["a much longer sentence with many words in it", "short"]
    batch = lm(texts)
    assert len(batch) == 2
    alone = lm([texts[1]])[0]
    short = batch[1]
    assert short.tokens == alone.tokens
    assert short.activations.shape == alone.activations.shape
    np.testing.assert_allclose(short.activations, alone.activations, rtol=1e-4, atol=1e-5)
    assert batch.activations_concat().shape[-1] == sum(len(s.tokens) for s in batch)


def test_batch_accepts_batch_encoding(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("bert"), verbose=False)
    enc = lm.tokenizer(["I love commas, really.", "He said."], padding=True, return_tensors="pt")
    batch = lm(enc)
    assert [len(s.tokens) for s in batch] == enc["attention_mask"].sum(1).tolist()


def test_two_threads_get_their_own_capture(llama):
    prompts = ["one two three four five six", "alpha"]
    expected = {p: llama.generate(p, generate=4, stop_at_eos=False) for p in prompts}
    results: dict[str, list] = {p: [] for p in prompts}
    barrier = threading.Barrier(2)

    def work(prompt):
        barrier.wait()
        for _ in range(5):
            results[prompt].append(llama.generate(prompt, generate=4, stop_at_eos=False))

    threads = [threading.Thread(target=work, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in prompts:
        for got in results[p]:
            assert got.tokens == expected[p].tokens
            assert got.activations.shape == expected[p].activations.shape
            np.testing.assert_allclose(got.activations, expected[p].activations, rtol=1e-5, atol=1e-6)


def test_weights_loaded_once(tiny_model_dir):
    a = ecco_sdk.from_pretrained(tiny_model_dir("gpt2"), verbose=False)
    b = ecco_sdk.from_pretrained(tiny_model_dir("gpt2"), activations=False, verbose=False)
    assert a.model is b.model
    assert b.generate("x y", generate=1).activations is None


def test_activation_layers_subset(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("qwen2"), activation_layers=[1], verbose=False)
    out = lm.generate("x y z", generate=2)
    assert out.activations.shape[0] == 1 and out.activation_layers == [1]
    with pytest.raises(ecco_sdk.InputError, match=r"layers 0\.\.1"):
        ecco_sdk.from_pretrained(tiny_model_dir("qwen2"), activation_layers=[2], verbose=False)


def test_save_load_roundtrip(llama, tmp_path):
    out = llama.generate("one two three", generate=3, attribution=["saliency"])
    path = out.save(tmp_path / "run.ecco")
    back = ecco_sdk.load(path)
    for name in ("token_ids", "candidate_ids", "candidate_probs", "hidden_states", "activations"):
        np.testing.assert_array_equal(getattr(back, name), getattr(out, name))
    assert back.tokens == out.tokens and back.candidate_tokens == out.candidate_tokens
    assert back.generation == out.generation and back.meta == out.meta
    a, b = out.attributions["saliency"], back.attributions["saliency"]
    np.testing.assert_array_equal(a.scores_l2, b.scores_l2)
    np.testing.assert_array_equal(a.raw, b.raw)
    assert back.lm is None
    json.dumps(out.to_dict())
    full = out.to_dict(full=True)
    assert np.asarray(full["activations"]).shape == out.activations.shape
    assert "hidden_states(3," in repr(out) and "attributions: saliency" in repr(out)


def test_damaged_file_is_a_clear_error(llama, tmp_path):
    path = llama.generate("one two", generate=1).save(tmp_path / "run.ecco")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ecco_sdk.FileFormatError):
        ecco_sdk.load(path)
    other = tmp_path / "other.ecco"
    other.write_text("not a zip")
    with pytest.raises(ecco_sdk.FileFormatError):
        ecco_sdk.load(other)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   "}, "empty"),
        ({"text": "x", "generate": 0}, "generate must be"),
        ({"text": "x", "generate": 1.5}, "generate must be"),
        ({"text": "x", "temperature": 0}, "temperature"),
        ({"text": "x", "top_p": 1.5}, "top_p"),
        ({"text": "x", "top_k": 0}, "top_k"),
        ({"text": "x", "topk_candidates": 0}, "topk_candidates"),
        ({"text": "x", "attribution": ["magic"]}, "unknown attribution method"),
        ({"text": "word " * 200, "generate": 5}, "context of 128"),
    ],
)
def test_bad_generate_arguments(llama, kwargs, match):
    text = kwargs.pop("text")
    with pytest.raises(ecco_sdk.InputError, match=match):
        llama.generate(text, **kwargs)


def test_unknown_and_offline_models():
    with pytest.raises(ecco_sdk.InputError, match="unknown model"):
        ecco_sdk.from_pretrained("not a model id!", verbose=False)
    with pytest.raises(ecco_sdk.ModelLoadError, match="smollm2-135m-instruct"):
        ecco_sdk.from_pretrained("someone/definitely-not-cached-model", verbose=False)
    with pytest.raises(ecco_sdk.InputError, match="dtype"):
        ecco_sdk.from_pretrained("smollm2-135m-instruct", dtype="float13", verbose=False)


def test_encoder_cannot_generate(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("bert"), verbose=False)
    with pytest.raises(ecco_sdk.InputError, match="encoder"):
        lm.generate("hello")
    with pytest.raises(ecco_sdk.InputError, match="empty"):
        lm(["fine", ""])


def test_progress_bar_respects_verbose(tiny_model_dir, capsys):
    quiet = ecco_sdk.from_pretrained(tiny_model_dir("llama"), verbose=False)
    quiet.generate("one", generate=3)
    assert "generating" not in capsys.readouterr().err
    loud = ecco_sdk.LM(quiet.loaded, quiet.adapter, verbose=True)
    loud.generate("one", generate=3)
    assert "generating" in capsys.readouterr().err


def test_token_id_takes_an_id_or_exactly_one_token(llama):
    ids = llama.tokenizer(" one", add_special_tokens=False).input_ids
    assert len(ids) == 1
    assert llama.token_id(" one") == ids[0]
    assert llama.token_id(ids[0]) == ids[0] and llama.token_id(np.int64(ids[0])) == ids[0]
    with pytest.raises(ecco_sdk.InputError, match="watch token ' Paris two' is 2 tokens"):
        llama.token_id(" Paris two", "watch token")


def test_new_output_fills_what_every_run_shares(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("llama"), activation_layers=[1], verbose=False)
    ids = lm.encode("one two three")[0].tolist()
    out = lm.new_output(ids, 2, n_generated=1)
    assert out.token_ids.tolist() == ids and out.tokens == lm.token_strings(ids)
    assert (out.n_input_tokens, out.n_generated, out.kind, out.model_name) == (2, 1, "causal", lm.name)
    assert out.activation_layers == [1] and out.lm is lm
    assert out.meta == {"adapter": lm.adapter.describe(), "source": lm.loaded.source}
    generated = lm.generate("one two three", generate=1)
    assert generated.meta == out.meta and generated.activation_layers == out.activation_layers
