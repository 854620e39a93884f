"""The two embedded models, for real: conversion cache, tokenizer behaviour, top predictions, shapes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import ecco_sdk
from ecco_sdk.models import EMBEDDED, cache_dir

pytestmark = pytest.mark.slow


def test_smollm_predicts_paris(smollm):
    out = smollm.generate("The capital of France is", generate=1)
    assert out.candidates[0][0].token == " Paris"
    assert out.candidates[0][0].prob > 0.5


def test_smollm_tokenizer_adds_no_bos(smollm):
    ids = smollm.tokenizer("Heathrow airport is located in the city of").input_ids
    assert ids[0] != smollm.tokenizer.convert_tokens_to_ids("<|im_start|>")
    out = smollm.generate("Heathrow airport is located in the city of", generate=8)
    assert out.candidates[0][0].token == " London"  # with the GGUF's BOS it would be " Southampton"
    assert out.hidden_states.shape == (31, len(out.tokens), 576)
    assert out.activations.shape == (30, 1536, len(out.tokens))


def test_minilm_six_layers_for_every_real_token(minilm):
    batch = minilm(["I love commas, really.", "He said she would."])
    for seq in batch:
        assert seq.tokens[0] == "[CLS]" and seq.tokens[-1] == "[SEP]"
        assert seq.activations.shape == (6, 1536, len(seq.tokens))
        assert np.isfinite(seq.activations).all()
    assert len(batch[0].tokens) != len(batch[1].tokens)  # padding was removed, not kept


def test_list_models_reports_embedded():
    rows = {m.name: m for m in ecco_sdk.list_models()}
    assert rows["smollm2-135m-instruct"].available and rows["smollm2-135m-instruct"].cached
    assert rows["minilm-l6"].available and rows["minilm-l6"].kind == "encoder"
    qwen = rows["qwen2.5-coder-1.5b-instruct"]  # listed whether or not its 22 packages are installed
    assert qwen.kind == "causal" and qwen.available == EMBEDDED["qwen2.5-coder-1.5b-instruct"].installed()
    assert "fallback" in rows["smollm2-135m-instruct"].note


def test_conversion_cache_is_reused(tmp_path):
    """A fresh cache converts the GGUF once; the marker makes the next load skip conversion."""
    env = {**os.environ, "ECCO_SDK_CACHE": str(tmp_path)}
    code = (
        "import time, ecco_sdk; t=time.perf_counter(); "
        "ecco_sdk.from_pretrained('smollm2-135m-instruct', verbose=False); print(time.perf_counter()-t)"
    )
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (tmp_path / "models" / "smollm2-135m-instruct" / "model.safetensors").exists()
    assert (tmp_path / "models" / "smollm2-135m-instruct" / "ecco_sdk.json").exists()
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(second.stdout.split()[-1]) < float(first.stdout.split()[-1])
    assert EMBEDDED["smollm2-135m-instruct"].source() is not None
    assert cache_dir() != tmp_path  # the env var only applied to the child processes


def test_cli_demo_prints_candidates():
    res = subprocess.run(
        [sys.executable, "-m", "ecco_sdk.cli", "demo", "The capital of France is", "--tokens", "2", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "' Paris'" in res.stdout and "<-" in res.stdout


def test_a_copy_of_the_same_file_reuses_the_conversion(tmp_path, monkeypatch):
    """Another install of the package (same bytes, new mtime) is recognised by content, a changed file is not."""
    import json

    from ecco_sdk import models

    monkeypatch.setenv("ECCO_SDK_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "a" / "model.gguf"
    source.parent.mkdir()
    source.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    folder = models._converted_dir("m")
    folder.mkdir(parents=True)
    (folder / "ecco_sdk.json").write_text(json.dumps(models._source_stamp(source)))
    assert models._is_converted("m", source)

    copy = tmp_path / "b" / "model.gguf"  # the same package in a second virtual environment
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert models._is_converted("m", copy)

    changed = tmp_path / "c" / "model.gguf"  # same size, other bytes: a different model
    changed.parent.mkdir()
    changed.write_bytes(b"GGUF" + bytes(range(255, -1, -1)) * 64)
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    assert not models._is_converted("m", changed)
