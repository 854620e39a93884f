"""Time and memory of `ecco_sdk.load` refusing crafted files (issue 12), with the loader before the fix as the peer.

Each case runs in a fresh child process: median wall time over 3 calls, the peak of traced allocations
(tracemalloc: Python objects and numpy buffers) in a separate call, and the growth of the child's peak RSS
(VmHWM) over its RSS just before loading. The peer is the previous loader (zipfile + np.load, reproduced
below); it runs only where that is safe here (it inflates the 256 MiB case and reads the legit file).
The files are built by tests/crafted_ecco.py.

    python bench/load_refusals.py
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import run_child, table

GIB = 2**30


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def old_load(path: str):
    """The loader before issue 12 (OutputSeq.load at HEAD 2026-12-02), reproduced: inflate everything, then check."""
    import numpy as np

    from ecco_sdk.attribution import PrimaryAttribution
    from ecco_sdk.errors import FileFormatError
    from ecco_sdk.output import _ARRAY_FIELDS, FORMAT, FORMAT_VERSION, OutputSeq

    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
            with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise FileFormatError(f"{path} is not a readable ecco_sdk file ({type(err).__name__}: {err})") from err
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not an ecco_sdk OutputSeq file (format={meta.get('format')!r})")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise FileFormatError(f"{path} was written by a newer ecco_sdk (format version {meta['version']}); upgrade")
    attr_meta = meta.pop("attributions", {})
    for k in ("format", "version"):
        meta.pop(k)
    try:
        attributions = {
            key: PrimaryAttribution.from_parts(
                m, {n.split("/", 2)[2]: a for n, a in arrays.items() if n.startswith(f"attr/{key}/")}
            )
            for key, m in attr_meta.items()
        }
        plain = {n: arrays.get(n) for n in _ARRAY_FIELDS}
        if plain["token_ids"] is None:
            raise KeyError("token_ids")
        return OutputSeq(**meta, **plain, attributions=attributions)
    except (KeyError, TypeError) as err:
        raise FileFormatError(f"{path} is missing or has unexpected fields ({err})") from err


def child(loader: str, path: str) -> dict:
    """Measure one loader on one file in this (fresh) process."""
    import ecco_sdk

    fn = ecco_sdk.load if loader == "new" else old_load

    def call() -> str:
        try:
            fn(path)
            return "loaded"
        except Exception as err:  # reported in the table
            return f"{type(err).__name__}: {err}"

    rss_before = _rss_mb("VmRSS")
    times, outcome = [], ""
    for _ in range(3):
        start = time.perf_counter()
        outcome = call()
        times.append(time.perf_counter() - start)
    grown = _rss_mb("VmHWM") - rss_before
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": statistics.median(times), "traced_mb": peak / 2**20, "rss_growth_mb": grown, "outcome": outcome}


def build(tmp: Path) -> list[tuple[str, str, bool]]:
    """(case, path, also run the old loader) for every crafted file."""
    import numpy as np
    from crafted_ecco import bomb_file, header_claims_file, raw_zip, sample_run, variant, write_parts

    fifo = tmp / "fifo.ecco"
    os.mkfifo(fifo)
    sparse = tmp / "sparse.ecco"
    with open(sparse, "wb") as f:
        f.truncate(600 * 2**20)
    many = tmp / "many.ecco"
    many.write_bytes(raw_zip([(f"m{i}", zipfile.ZIP_STORED, b"", 0, 0) for i in range(20)]))
    deep = write_parts(
        tmp / "deep.ecco",
        b'{"format": "ecco_sdk.OutputSeq", "version": 1, "generation": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        {"token_ids": np.array([1])},
    )
    big = sample_run()
    rng = np.random.default_rng(0)
    big.hidden_states = rng.random((3, 5, 1_677_721), dtype=np.float32)  # 96 MiB of noise (incompressible)
    legit = big.save(tmp / "legit.ecco")
    return [
        ("/dev/zero", "/dev/zero", False),
        ("a FIFO", str(fifo), False),
        ("a directory", str(tmp), False),
        ("600 MiB sparse file", str(sparse), False),
        ("2 MB file, arrays inflate to 2 GiB", str(bomb_file(tmp / "bomb.ecco", 2 * GIB)), False),
        ("member declares 1000 B, inflates to 1 GiB", str(bomb_file(tmp / "liar.ecco", GIB, declared=1000)), False),
        ("npy header claims 4 TB", str(header_claims_file(tmp / "huge.ecco", (2**39,))), False),
        ("256 MiB array, wrong shape (within limit)", str(bomb_file(tmp / "shape.ecco", 256 * 2**20)), True),
        ("meta.json is a list", str(variant(tmp, "list", meta_fn=lambda m: [m])), True),
        ('version "1"', str(variant(tmp, "v1", meta_fn=lambda m: {**m, "version": "1"})), True),
        ("JSON nested 200k deep", str(deep), True),
        ("n_generated = 10**6", str(variant(tmp, "ngen", meta_fn=lambda m: {**m, "n_generated": 10**6})), True),
        ("npz without token_ids", str(variant(tmp, "noids", arrays_fn=lambda a: a.pop("token_ids"))), True),
        ("zip with 20 members", str(many), True),
        ("legit run, 96 MiB of arrays", str(legit), True),
    ]


def main() -> None:
    """Print the table."""
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for case, path, peer in build(Path(d)):
            new = run_child(__file__, "--child", "new", path)
            old = run_child(__file__, "--child", "old", path) if peer else None
            row = [case, new["seconds"] * 1000, new["traced_mb"], new["rss_growth_mb"], new["outcome"][:70]]
            if old is None:
                row += ["-", "-", "-"]
            else:
                row += [old["seconds"] * 1000, old["traced_mb"], old["outcome"][:40]]
            rows.append(row)
    headers = ["file", "ms", "traced MiB", "RSS growth MiB", "new loader says", "old ms", "old traced MiB", "old"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
