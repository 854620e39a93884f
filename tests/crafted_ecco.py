"""Crafted .ecco files for the load-bounds tests and bench/load_refusals.py: damaged, hostile and inconsistent ones.

Each builder writes one file and returns its path. Zip archives whose members lie about their size, or that
hold a pre-compressed deflate bomb, are written byte by byte here (zipfile cannot write a lying archive).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ecco_sdk.attribution import PrimaryAttribution
from ecco_sdk.output import OutputSeq


def sample_run() -> OutputSeq:
    """A small consistent causal run (5 tokens, 2 generated, candidates, arrays and one attribution)."""
    rng = np.random.default_rng(0)
    n, t = 5, 2
    attr = PrimaryAttribution(
        method="saliency",
        target_kind="prob",
        scope="prefix",
        baseline="zeros",
        target_positions=np.array([3, 4]),
        target_ids=np.array([7, 8]),
        scores_l2=rng.random((t, n)).astype(np.float32),
        scores_sum=rng.random((t, n)).astype(np.float32),
        raw=rng.random((t, n, 4)).astype(np.float32),
    )
    return OutputSeq(
        model_name="tiny",
        kind="causal",
        token_ids=np.array([1, 2, 3, 7, 8]),
        tokens=["a", " b", " c", " d", " e"],
        n_input_tokens=3,
        n_generated=2,
        candidate_ids=np.array([[7, 9, 10], [8, 11, 12]]),
        candidate_tokens=[[" d", " x", " y"], [" e", " z", " w"]],
        candidate_probs=np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]], dtype=np.float32),
        hidden_states=rng.random((3, n, 4)).astype(np.float32),
        activations=rng.random((2, 6, n)).astype(np.float32),
        attributions={"saliency": attr},
        generation={"do_sample": False},
    )


def read_parts(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """meta.json and the arrays of a file we wrote ourselves (trusted, small)."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        with np.load(io.BytesIO(zf.read("arrays.npz"))) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def write_parts(path: Path, meta: Any, arrays: dict[str, np.ndarray] | None = None, npz: bytes | None = None) -> Path:
    """An .ecco zip of the given meta.json value and arrays (or ready-made arrays.npz bytes)."""
    if npz is None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **(arrays or {}))
        npz = buf.getvalue()
    meta_bytes = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("meta.json", meta_bytes)
        zf.writestr("arrays.npz", npz)
    return path


def variant(
    tmp: Path, name: str, meta_fn: Callable[[dict], Any] | None = None, arrays_fn: Callable[[dict], None] | None = None
) -> Path:
    """The sample run saved, then its meta.json and/or arrays edited by the given functions."""
    good = sample_run().save(tmp / f"{name}.good.ecco")
    meta, arrays = read_parts(good)
    if meta_fn is not None:
        meta = meta_fn(meta)
    if arrays_fn is not None:
        arrays_fn(arrays)
    return write_parts(tmp / f"{name}.ecco", meta, arrays)


def raw_zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip built byte by byte from (name, method, stored bytes, crc32, declared uncompressed size) members."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, method, data, crc, size in members:
        offset = out.tell()
        raw_name = name.encode()
        out.write(
            struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(raw_name), 0)
        )
        out.write(raw_name + data)
        central.write(
            struct.pack(
                "<4s6H3L5H2L",
                *(b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size),
                *(len(raw_name), 0, 0, 0, 0, 0, offset),
            )
        )
        central.write(raw_name)
    cd = central.getvalue()
    count = len(members)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(cd), out.tell(), 0)
    return out.getvalue() + cd + end


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """An npy 1.0 header claiming `shape` of `dtype` (no data)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def deflate_bomb(header: bytes, n_zero_bytes: int, chunk: int = 1 << 24) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of `header` followed by `n_zero_bytes` zeros, built in O(chunk) time and memory.

    After a full flush deflate forgets its history, so one compressed chunk of zeros can be repeated verbatim.
    """
    assert n_zero_bytes % chunk == 0
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = head.compress(header) + head.flush(zlib.Z_FULL_FLUSH)
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = zeros.compress(bytes(chunk)) + zeros.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    zero_chunk = bytes(chunk)
    for _ in range(n_zero_bytes // chunk):
        crc = zlib.crc32(zero_chunk, crc)
    return stream + block * (n_zero_bytes // chunk) + b"\x03\x00", crc


def bomb_file(path: Path, inflated_bytes: int, declared: int | None = None) -> Path:
    """A valid-looking .ecco whose arrays.npz holds hidden_states that inflate to `inflated_bytes` (zeros).

    `declared` sets the uncompressed size the inner zip claims (default: the truth).
    """
    header = npy_header((inflated_bytes // 4,), "<f4")
    stream, crc = deflate_bomb(header, inflated_bytes)
    size = len(header) + inflated_bytes if declared is None else declared
    npz = raw_zip([("token_ids.npy", zipfile.ZIP_DEFLATED, stream, crc, size)])
    meta = {"format": "ecco_sdk.OutputSeq", "version": 1, "model_name": "m", "kind": "causal", "tokens": ["a"]}
    meta["n_input_tokens"] = 1
    return write_parts(path, meta, npz=npz)


def header_claims_file(path: Path, shape: tuple[int, ...], dtype: str = "<f8") -> Path:
    """An .ecco whose token_ids.npy header claims `shape` of `dtype` but holds 8 bytes of data."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("token_ids.npy", npy_header(shape, dtype) + bytes(8))
    meta = {"format": "ecco_sdk.OutputSeq", "version": 1, "model_name": "m", "kind": "causal", "tokens": ["a"]}
    meta["n_input_tokens"] = 1
    return write_parts(path, meta, npz=buf.getvalue())
