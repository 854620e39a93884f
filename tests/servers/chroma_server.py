"""A real `chroma run` server on loopback for tests of the HttpClient path."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> Path:
    """The `chroma` executable next to this Python."""
    path = Path(sys.executable).parent / "chroma"
    if not path.exists():
        raise RuntimeError(f"the chroma CLI is missing at {path}; install chromadb into this environment")
    return path


@contextlib.contextmanager
def chroma_server(data_dir: Path, timeout: float = 60.0) -> Iterator[tuple[str, int]]:
    """Start `chroma run --path DIR --host 127.0.0.1 --port N`, wait for its heartbeat, stop it afterwards."""
    port = free_port()
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    log_path = Path(data_dir) / "chroma-server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(chroma_cli()), "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not answer within {timeout}s: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
