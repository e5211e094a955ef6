"""A TCP proxy on loopback that resets a deterministic share of HTTP requests: a flapping network.

`FaultyProxy(port, every=k)` forwards bytes between its clients and 127.0.0.1:`port` and counts
requests (on a kept-alive connection, a request is client bytes after server bytes). Every k-th
request ends its connection, in turn at one of four points (`CUTS`): with a TCP reset (SO_LINGER 0)
before the request reaches the server, after the server has acted on it but before any of the
answer comes back, or after the answer's first bytes (mid-response); or, "short", with an orderly
close right after the answer's status line (a middlebox dropping a connection: the client gets a
status without headers). `every=1` cuts every request: an endpoint that never answers in full.
Bounded: a thread per connection, which ends when the proxy closes (`close()`, or the end of the
`with` block) or after `_IDLE_S` without traffic.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading

CUTS = ("before", "after", "mid", "short")  # where a faulty request's connection ends, in turn
_IDLE_S = 30  # a connection with nothing to forward for this long is dropped (bounded threads)
_POLL_S = 0.2  # how often a connection's thread looks whether the proxy is closing


class FaultyProxy:
    """Listening on 127.0.0.1:`self.port`; `self.url` is its http:// address."""

    def __init__(self, target_port: int, every: int, cuts: tuple[str, ...] = CUTS):
        self.target = ("127.0.0.1", target_port)
        self.every, self.cuts = every, cuts
        self.requests = 0
        self.resets = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in list(self._conns):
                _close(sock)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _next_cut(self) -> str | None:
        """Where to reset the request that starts now, or None to forward it whole."""
        with self._lock:
            self.requests += 1
            if self.requests % self.every:
                return None
            self.resets += 1
            return self.cuts[(self.resets - 1) % len(self.cuts)]

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._conns.update((client, server))
        try:
            self._pump(client, server)
        finally:
            _close(server)
            _close(client)
            with self._lock:
                self._conns.difference_update((client, server))

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Forward both ways until either side closes; reset the connection where a faulty request says."""
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, server)
            sel.register(server, selectors.EVENT_READ, client)
            answering, cut = True, None  # the last bytes came from the server (so the next request is new)
            idle = 0.0
            while not self._stop.is_set() and idle < _IDLE_S:
                ready = sel.select(timeout=_POLL_S)
                idle = 0.0 if ready else idle + _POLL_S
                for key, _ in ready:
                    source, sink = key.fileobj, key.data
                    try:
                        data = source.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if source is client:
                        if answering:
                            answering, cut = False, self._next_cut()
                        if cut == "before":
                            _reset(client)
                            return
                    else:
                        answering = True
                        if cut == "after":
                            _reset(client)
                            return
                        if cut == "short":  # the status line only, then an orderly close
                            client.sendall(data[: data.find(b"\r\n") + 2])
                            _close(client)
                            return
                        if cut == "mid":
                            client.sendall(data[: max(1, len(data) // 3)])
                            _reset(client)
                            return
                    try:
                        sink.sendall(data)
                    except OSError:
                        return


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (RST) instead of an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
