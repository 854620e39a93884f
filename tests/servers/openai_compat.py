"""A loopback OpenAI-compatible HTTP server for tests: chat completions, embeddings, and faults on demand.

Speaks ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` on 127.0.0.1 (random free port) with the
stdlib only, so the real ``openai`` client can be tested end to end. It checks the bearer key (401 with
the wrong key echoed back, like a careless server would), can fail with given statuses a given number of
times (429/500...), can stall (for timeouts), and returns logprobs when asked. Replies come from a
``responder(messages, body) -> str``; embeddings are deterministic hashed bags of words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from servers import LoopbackHTTP, send_json

Responder = Callable[[list[dict[str, str]], dict[str, Any]], str]
_PIECE = re.compile(r"\d|[^\W\d]+|\s|.", re.S)
_WORD = re.compile(r"\w+|[^\w\s]")


def echo_responder(messages: list[dict[str, str]], body: dict[str, Any]) -> str:
    """Default reply: repeats the last user message's first line."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "").splitlines()[0][:200]


def hashed_embedding(text: str, dim: int) -> np.ndarray:
    """A deterministic bag-of-words vector: each word adds +-1 at a hashed position."""
    vec = np.zeros(dim, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        digest = hashlib.md5(word.encode("utf-8")).digest()
        vec[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    if norm == 0:
        vec[0] = 1.0
        return vec
    return vec / norm


def split_pieces(text: str) -> list[str]:
    """How the server 'tokenizes' a reply for logprobs: digits one by one, words, single other chars."""
    return _PIECE.findall(text)


def _alternatives(piece: str, k: int) -> list[tuple[str, float]]:
    if piece.isdigit():
        d = int(piece)
        alts = [(piece, math.log(0.7))] + [(str(n), math.log(0.15)) for n in (d - 1, d + 1) if 0 <= n <= 9]
    elif piece.lower() in ("yes", "no"):
        other = {"yes": "No", "no": "Yes"}[piece.lower()]
        alts = [(piece, math.log(0.8)), (other, math.log(0.2))]
    else:
        alts = [(piece, 0.0)]
    return alts[: max(k, 1)]


class OpenAICompatServer(LoopbackHTTP):
    """The server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        api_key: str = "sk-test-key",
        responder: Responder | None = None,
        embedding_dim: int = 64,
        logprobs: bool = True,
    ) -> None:
        self.api_key = api_key
        self.responder = responder or echo_responder
        self.embedding_dim = embedding_dim
        self.logprobs = logprobs
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------------------
    def fail(self, status: int, times: int = 1) -> None:
        """Answer the next `times` requests with this HTTP status."""
        with self._lock:
            self._failures.extend([status] * times)

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body, "time": time.monotonic()})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                send_json(self, status, payload, headers)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                    return
                owner._record(self.path, body)
                if owner.delay:
                    time.sleep(owner.delay)
                given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if given != owner.api_key:
                    self._send(
                        401,
                        {"error": {"message": f"Incorrect API key provided: {given}", "code": "invalid_api_key"}},
                    )
                    return
                status = owner._next_failure()
                if status is not None:
                    message = {429: "Rate limit reached", 500: "The server had an error"}.get(status, "failure")
                    self._send(status, {"error": {"message": message, "type": "server_error"}})
                    return
                route = self.path.split("?", 1)[0].rstrip("/")
                if route == "/v1/chat/completions":
                    self._send(200, owner._chat(body))
                elif route == "/v1/embeddings":
                    self._send(200, owner._embeddings(body))
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        return Handler

    # -- endpoints -----------------------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        text = self.responder(messages, body)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        pieces = split_pieces(text)
        finish = "stop"
        if max_tokens is not None and len(pieces) > int(max_tokens):
            pieces = pieces[: int(max_tokens)]
            text = "".join(pieces)
            finish = "length"
        logprobs = None
        if body.get("logprobs") and self.logprobs:
            k = int(body.get("top_logprobs") or 0)
            content = []
            for piece in pieces:
                alts = _alternatives(piece, k)
                content.append(
                    {
                        "token": piece,
                        "logprob": alts[0][1],
                        "bytes": list(piece.encode("utf-8")),
                        "top_logprobs": [
                            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in alts[:k]
                        ],
                    }
                )
            logprobs = {"content": content, "refusal": None}
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(pieces),
                "total_tokens": prompt_chars // 4 + len(pieces),
            },
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        data = []
        for i, text in enumerate(inputs):
            vec = hashed_embedding(str(text), self.embedding_dim)
            if body.get("encoding_format") == "base64":
                emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
            else:
                emb = vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "test-embedding"),
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
