"""The real llama.cpp server (from the prebuilt `xllamacpp` wheel) on loopback, serving an embedded GGUF.

`llama_server(gguf)` starts this file as a child process (so a crash or a kill cannot take pytest with it),
waits until `GET /health` answers 200, yields the OpenAI base URL, and stops the child afterwards. Run
directly (`python tests/servers/llama.py MODEL.gguf PORT ALIAS`) it serves until SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from servers.chroma_server import free_port

# One thread unless ECCO_TEST_LLAMA_THREADS says otherwise: llama.cpp's threads spin at barriers, so when the
# cores are shared two threads collapse (measured on 2 busy cores: 0.8 generated tok/s with 2 threads, 8-10 with
# 1). 2048 tokens of context are plenty for short explain/score prompts and keep the KV cache small.
THREADS = int(os.environ.get("ECCO_TEST_LLAMA_THREADS", "1"))
CONTEXT = 2048


def _serve(model: str, port: int, alias: str) -> None:
    """Start llama.cpp's HTTP server in this process and block until SIGTERM."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = model
    params.model_alias = {alias}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = CONTEXT
    params.n_parallel = 1
    params.cpuparams.n_threads = THREADS
    params.cpuparams_batch.n_threads = THREADS
    server = xlc.Server(params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"listening {server.listening_address}", flush=True)
    stop.wait()
    del server


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200 and json.loads(r.read(4096) or b"{}").get("status") == "ok"
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def llama_server(gguf: Path, alias: str, log_dir: Path, timeout: float = 180.0) -> Iterator[str]:
    """Serve `gguf` under the model name `alias` on 127.0.0.1 (free port); yields the base URL ending in /v1."""
    port = free_port()
    log_path = Path(log_dir) / "llama-server.log"
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, str(gguf), str(port), alias], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server not healthy within {timeout}s: {_tail(log_path)}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path, limit: int = 3000) -> str:
    """The end of a log file, read with a bound."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - limit))
        return fh.read(limit).decode("utf-8", "replace")


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
