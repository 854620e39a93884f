"""A loopback HTTP server that records every request (headers included) and answers as told.

For the app's secret and upstream-error policy: it shows which Authorization header reached a URL, and it
can answer with any status and body (an error page with a marker, a body that is not JSON, a redirect).
A server that never answers is `servers.stalling.SilentServer`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from servers import LoopbackHTTP

#: Most bytes of a request body kept (bounded: the tests share the machine's memory).
MAX_BODY = 1 << 20


class RecordingServer(LoopbackHTTP):
    """Records (method, path, lower-cased headers, body) of each request; replies with `status`, `body`, `headers`."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"{}",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def authorizations(self) -> list[str]:
        """The Authorization header of every request received so far."""
        with self._lock:
            return [r["headers"].get("authorization", "") for r in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0") or 0), MAX_BODY)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                self.send_response(owner.status)
                for key, value in owner.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            do_GET = do_POST = _handle

        return Handler
