"""Loopback TCP servers that misbehave on purpose: one that never answers, one proxy that stops forwarding."""

from __future__ import annotations

import socket
import threading


class _Listener:
    """Accepts loopback connections on a thread and hands each to `_serve` until `close`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting and join the threads."""
        self.stop.set()
        self.sock.close()
        for t in self.threads:
            t.join(5)


class SilentServer(_Listener):
    """Accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.conns: list[socket.socket] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        self.conns.append(conn)  # held open, never answered

    def close(self) -> None:
        """Stop, then close the held connections."""
        super().close()
        for c in self.conns:
            c.close()


class FreezableProxy(_Listener):
    """Forwards to a real loopback server; once `frozen` is set it swallows requests, so nothing is answered."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.frozen = threading.Event()
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.upstream))
        for src, dst, gate in ((conn, server, True), (server, conn, False)):
            t = threading.Thread(target=self._pump, args=(src, dst, gate), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, gate: bool) -> None:
        src.settimeout(0.2)
        try:
            while not self.stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if gate and self.frozen.is_set():
                    continue  # the server never sees this request
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()
