"""A TCP proxy in front of PostgreSQL that can fail the way networks and hosts do.

Real sockets, one thread per direction and connection. It reads the client's
side of the PostgreSQL protocol message by message (psycopg2 sends every
statement as a simple Query), so it can act on the COMMIT of a transaction
that wrote something:

- ``blackhole()``: nothing is forwarded any more, in either direction, and the
  sockets stay open (a host gone silent; the kernel still acknowledges, so
  TCP on the client side notices nothing). ``heal()`` lets the held bytes go on.
- ``cut_commits(after=True)``: the COMMIT reaches the server, then both sides
  are cut: the transaction lands, the client sees a lost connection.
- ``cut_commits(after=False)``: both sides are cut instead of forwarding the
  COMMIT: nothing lands, the client sees a lost connection.
- ``hold_commits()``: the COMMIT is held (the sockets stay open) until
  ``drop_held()`` cuts those connections without forwarding it.
- ``cut_writes()``: both sides are cut instead of forwarding a transaction's
  first INSERT/UPDATE/DELETE (the connection is lost in the middle of a batch).
- ``refuse()``: new connections are closed at once (the database is down);
  ``cut_commits(..., then_refuse=True)`` starts refusing at the cut.

Connections to the proxy use ``sslmode=disable`` so the protocol is readable.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import make_url

_SPECIAL_REQUESTS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: answered by one byte
# WITH: the ledger sends a stage's writes as one statement of data-modifying WITH
# queries (switch.ledger.sql.Writes); it uses WITH for nothing else.
_WRITES = (b"INSERT", b"UPDATE", b"DELETE", b"WITH")


class PgProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._cut: bool | None = None  # None: no cutting; True: after COMMIT; False: before
        self._cuts_left = 0
        self._then_refuse = False
        self._cut_writes = 0
        self._holding = False
        self._held: list[_Link] = []
        self._refusing = False
        self._links: list[_Link] = []
        self.cuts = threading.Semaphore(0)  # released at each cut (COMMIT or write)
        self.holds = threading.Semaphore(0)  # released at each held COMMIT
        self._closed = False
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def url(self, db_url: str) -> str:
        """``db_url`` (PostgreSQL) pointed at the proxy, readable on the wire."""
        url = make_url(db_url).set(host="127.0.0.1", port=self.port)
        url = url.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
        return url.render_as_string(hide_password=False)

    # -------------------------------------------------------------- faults

    def blackhole(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        """Back to normal: forward everything (held bytes too), cut and refuse nothing."""
        with self._lock:
            self._cut = None
            self._cut_writes = 0
            self._refusing = False
            self._holding = False
        self._flowing.set()

    def cut_commits(self, after: bool, times: int | None = 1, then_refuse: bool = False) -> None:
        """Cut the next ``times`` (None: every) COMMIT of a writing transaction."""
        with self._lock:
            self._cut = after
            self._cuts_left = -1 if times is None else times
            self._then_refuse = then_refuse

    def cut_writes(self, times: int = 1) -> None:
        with self._lock:
            self._cut_writes = times

    def hold_commits(self) -> None:
        with self._lock:
            self._holding = True

    def drop_held(self) -> None:
        """Cut the connections whose COMMIT is held: it never reaches the server."""
        with self._lock:
            held, self._held = self._held, []
            self._holding = False
        for link in held:
            link.cut()

    def refuse(self) -> None:
        with self._lock:
            self._refusing = True

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        with suppress(OSError):
            self._listener.close()
        for link in list(self._links):
            link.cut()

    # -------------------------------------------------------------- plumbing

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            link = _Link(self, client, server)
            self._links.append(link)
            link.start()

    def _on_commit(self, link: _Link) -> str:
        """What to do with a writing transaction's COMMIT: forward, cut-after, cut, hold."""
        with self._lock:
            if self._holding:
                self._held.append(link)
                self.holds.release()
                return "hold"
            if self._cut is None or self._cuts_left == 0:
                return "forward"
            if self._cuts_left > 0:
                self._cuts_left -= 1
            self._refusing = self._refusing or self._then_refuse
            return "cut-after" if self._cut else "cut"

    def _on_write(self) -> bool:
        """Whether to cut instead of forwarding a transaction's first write."""
        with self._lock:
            if self._cut_writes > 0:
                self._cut_writes -= 1
                return True
            return False


class _Link:
    """One client connection and its server connection."""

    def __init__(self, proxy: PgProxy, client: socket.socket, server: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._server = server
        self._wrote = False  # the transaction so far sent INSERT/UPDATE/DELETE

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True).start()
        threading.Thread(target=self._downstream, daemon=True).start()

    def cut(self) -> None:
        for sock in (self._client, self._server):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        self._proxy._flowing.wait()
        sock.sendall(data)

    def _downstream(self) -> None:
        """Server to client, as it comes."""
        try:
            while data := self._server.recv(65536):
                self._send(self._client, data)
        except OSError:
            pass
        self.cut()

    def _upstream(self) -> None:
        """Client to server, message by message."""
        try:
            for message in self._messages():
                if self._is_first_write(message) and self._proxy._on_write():
                    self.cut()
                    self._proxy.cuts.release()
                    return
                if self._is_writing_commit(message):
                    action = self._proxy._on_commit(self)
                    if action == "hold":
                        return  # drop_held() or close() cuts this link
                    if action != "forward":
                        self._cut_at_commit(message, after=action == "cut-after")
                        return
                self._send(self._server, message)
        except OSError:
            pass
        self.cut()

    def _cut_at_commit(self, message: bytes, after: bool) -> None:
        """The client sees its connection lost at COMMIT; the server got it, or not."""
        with suppress(OSError):
            self._client.shutdown(socket.SHUT_RDWR)
        if after:
            with suppress(OSError):
                self._server.sendall(message)
                self._server.shutdown(socket.SHUT_WR)  # COMMIT, then end of input
            self._proxy.cuts.release()
            return  # _downstream drains the server until it closes, then cuts
        self.cut()
        self._proxy.cuts.release()

    def _is_first_write(self, message: bytes) -> bool:
        return (
            not self._wrote
            and message[:1] == b"Q"
            and message[5:].lstrip().upper().startswith(_WRITES)
        )

    def _is_writing_commit(self, message: bytes) -> bool:
        if message[:1] != b"Q":
            return False
        statement = message[5:].lstrip().upper()
        if statement.startswith(_WRITES):
            self._wrote = True
        if statement.startswith((b"COMMIT", b"ROLLBACK")):
            wrote, self._wrote = self._wrote, False
            return wrote and statement.startswith(b"COMMIT")
        return False

    def _messages(self) -> Iterator[bytes]:
        buffer = _Reader(self._client)
        while True:  # the start-up: untyped messages, SSL/GSS requests first
            length = struct.unpack("!I", buffer.read(4))[0]
            body = buffer.read(length - 4)
            yield struct.pack("!I", length) + body
            if struct.unpack("!I", body[:4])[0] not in _SPECIAL_REQUESTS:
                break
        while True:
            head = buffer.read(5)
            yield head + buffer.read(struct.unpack("!I", head[1:])[0] - 4)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""

    def read(self, n: int) -> bytes:
        while len(self._data) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            self._data += chunk
        out, self._data = self._data[:n], self._data[n:]
        return out


@contextmanager
def pg_proxy() -> Iterator[PgProxy]:
    proxy = PgProxy()
    try:
        yield proxy
    finally:
        proxy.close()
