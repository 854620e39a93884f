"""Shared test set-up: offline hub, no telemetry, and the embedded models loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

FAMILIES = ("gpt2", "llama", "qwen2", "gemma", "gpt_neox", "bert", "distilbert", "t5")


def _tiny_config(family: str, vocab: int):
    """A small random config per architecture family (2 layers, hidden 32, FFN 64)."""
    import transformers as tf

    common = {"vocab_size": vocab}
    # The Hugging Face names most decoder families share; each family adds what is its own.
    hf = {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "max_position_embeddings": 128,
        **common,
    }
    if family == "gpt2":
        return tf.GPT2Config(
            n_layer=2, n_embd=32, n_head=2, n_inner=64, n_positions=128, bos_token_id=0, eos_token_id=2, **common
        )
    if family == "llama":
        return tf.LlamaConfig(num_key_value_heads=1, eos_token_id=2, **hf)
    if family == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=1, eos_token_id=2, **hf)
    if family == "gemma":
        return tf.GemmaConfig(num_key_value_heads=1, head_dim=16, eos_token_id=2, pad_token_id=0, bos_token_id=1, **hf)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(eos_token_id=2, **hf)
    if family == "bert":
        return tf.BertConfig(**hf)
    if family == "distilbert":
        return tf.DistilBertConfig(n_layers=2, dim=32, hidden_dim=64, n_heads=2, max_position_embeddings=128, **common)
    if family == "t5":
        return tf.T5Config(
            num_layers=2,
            num_decoder_layers=2,
            d_model=32,
            d_ff=64,
            num_heads=2,
            d_kv=16,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=2,
            **common,
        )
    raise ValueError(family)


def _tiny_model_class(family: str):
    import transformers as tf

    if family in ("bert", "distilbert"):
        return tf.AutoModelForMaskedLM
    if family == "t5":
        return tf.AutoModelForSeq2SeqLM
    return tf.AutoModelForCausalLM


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Build (once per session) a folder with a tiny random model of a family and a real tokenizer."""
    import torch

    from ecco_sdk.models import load

    made: dict[str, str] = {}

    def make(family: str) -> str:
        if family in made:
            return made[family]
        tok_name = "minilm-l6" if family in ("bert", "distilbert") else "smollm2-135m-instruct"
        tok = load(tok_name, verbose=False).tokenizer
        torch.manual_seed(0)
        cfg = _tiny_config(family, len(tok))
        model = _tiny_model_class(family).from_config(cfg)
        folder = tmp_path_factory.mktemp(f"tiny-{family}")
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        made[family] = str(folder)
        return made[family]

    return make


@pytest.fixture(scope="session")
def smollm():
    """The embedded SmolLM2-135M-Instruct, loaded once per test session."""
    import ecco_sdk

    return ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)


@pytest.fixture(scope="session")
def minilm():
    """The embedded all-MiniLM-L6-v2 encoder, loaded once per test session."""
    import ecco_sdk

    return ecco_sdk.from_pretrained("minilm-l6", verbose=False)


@pytest.fixture(scope="module")
def app_server():
    """The Gradio app (space/app.py) launched on a free loopback port for one test module; yields (url, demo)."""
    import socket

    from ecco_sdk.app import ServingConfig, load_app

    module = load_app()
    config = ServingConfig(max_new_tokens=12, explain_max_tokens=16, concurrency_limit=4)
    demo = module.build_app(["smollm2-135m-instruct"], config=config)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()


@pytest.fixture(scope="session")
def local():
    """The local explainer backend pinned to the small SmolLM2 (fast), loaded before any test swaps ECCO_SDK_CACHE."""
    from ecco_sdk.explain import LocalBackend, get_backend

    backend = get_backend("local:smollm2-135m-instruct")
    assert isinstance(backend, LocalBackend)
    _ = backend.loaded
    return backend


def _need_qwen() -> None:
    """Skip (with the install command) when the 1.5B model's packages are missing; `make install` adds them."""
    from ecco_sdk.models import EMBEDDED, QWEN_NAME

    if not EMBEDDED[QWEN_NAME].installed():
        pytest.skip(f"{QWEN_NAME} is not installed (run `make install`)")


@pytest.fixture(scope="session")
def qwen():
    """The embedded Qwen2.5-Coder-1.5B-Instruct (bfloat16), loaded once per test session."""
    import ecco_sdk
    from ecco_sdk.models import QWEN_NAME

    _need_qwen()
    return ecco_sdk.from_pretrained(QWEN_NAME, verbose=False)


@pytest.fixture(scope="session")
def llama_server_url(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server (xllamacpp wheel) serving the 1.5B GGUF on loopback; yields base URL."""
    from servers.llama import llama_server

    from ecco_sdk.models import QWEN_NAME, gguf_path

    _need_qwen()
    with llama_server(gguf_path(QWEN_NAME, verbose=False), QWEN_NAME, tmp_path_factory.mktemp("llama")) as url:
        yield url


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    """A tiny random Llama (one per test module, so no state leaks between modules), shared by the attribution tests."""
    import ecco_sdk

    return ecco_sdk.from_pretrained(tiny_model_dir("llama"), verbose=False)
