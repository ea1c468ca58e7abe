"""A TCP proxy between the tracker and PostgreSQL that cuts a connection at the COMMIT of an insert.

What it makes happen is what a network fault or a database crash does at the worst moment: the
client has sent COMMIT and will never hear how it went. `arm("before")` drops the COMMIT (the
server rolls the transaction back when the connection goes); `arm("after")` lets the server commit
and drops its answer. `refuse` makes it turn every new connection away (the database is gone); `sever` loses every
connection in the network, the server's side left open.
"""

from __future__ import annotations

import contextlib
import socket
import threading

INSERT = b"INSERT INTO entries"


class CommitCutter:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode: str | None = None  # armed: "before" or "after" the next COMMIT of an insert
        self.cut = threading.Event()  # set once the armed cut was made
        self.refuse = threading.Event()
        self.then_refuse = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.connections: list[tuple[socket.socket, dict]] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def url(self, user: str = "potluck", dbname: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def arm(self, mode: str, *, then_refuse: bool = False) -> None:
        """Cut at the next COMMIT of an insert; `then_refuse`: and turn new connections away from then on."""
        assert mode in ("before", "after")
        self.cut.clear()
        self.then_refuse, self.mode = then_refuse, mode

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            if self.refuse.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            connection = {"insert": False, "drop_answer": False, "severed": False}
            with self.lock:
                self.sockets += [client, server]
                self.connections.append((client, connection))
            self._spawn(self._to_server, client, server, connection)
            self._spawn(self._to_client, server, client, connection)

    def _to_server(self, client: socket.socket, server: socket.socket, connection: dict) -> None:
        messages = _Messages()
        while data := _recv(client):
            for kind, body in messages.feed(data):
                if kind == b"Q" and body == b"COMMIT\x00":
                    inserted, connection["insert"] = connection["insert"], False  # the transaction ends
                    if self.mode is not None and inserted:
                        mode, self.mode = self.mode, None
                        if mode == "before":
                            self._cut(client, server)
                            return
                        connection["drop_answer"] = True
                elif kind in (b"P", b"B", b"Q") and messages.is_insert(kind, body):
                    connection["insert"] = True
            try:
                server.sendall(data)
            except OSError:
                break
        _close(client, *([] if connection["severed"] else [server]))

    def _to_client(self, server: socket.socket, client: socket.socket, connection: dict) -> None:
        while data := _recv(server):
            if connection["drop_answer"]:  # the server has committed; its answer never arrives
                self._cut(client, server)
                return
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client, *([] if connection["severed"] else [server]))

    def sever(self) -> None:
        """Lose every connection in the network: the client's side closes, the server's stays open and silent
        (the server goes on thinking its sessions alive, as it does until its TCP keepalive gives up)."""
        with self.lock:
            for client, connection in self.connections:
                connection["severed"] = True
                _close(client)

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        if self.then_refuse:
            self.refuse.set()
        _close(client, server)
        self.cut.set()

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            _close(*self.sockets)
        for thread in self.threads:
            thread.join(timeout=5)


class _Messages:
    """Splits the client's side of the wire protocol into (type, body) messages. psycopg prepares a
    statement it runs often: its text is then sent once (Parse, under a name) and later only named (Bind)."""

    def __init__(self):
        self.buffer, self.started = b"", False
        self.inserts: set[bytes] = set()  # names of prepared statements that insert entries

    def feed(self, data: bytes):
        self.buffer += data
        while True:
            if not self.started:  # the startup packet: a length, no type byte
                if len(self.buffer) < 4:
                    return
                length = int.from_bytes(self.buffer[:4], "big")
                if len(self.buffer) < length:
                    return
                self.buffer, self.started = self.buffer[length:], True
                continue
            if len(self.buffer) < 5:
                return
            length = int.from_bytes(self.buffer[1:5], "big")
            if len(self.buffer) < 1 + length:
                return
            kind, body, self.buffer = self.buffer[:1], self.buffer[5:1 + length], self.buffer[1 + length:]
            yield kind, body

    def is_insert(self, kind: bytes, body: bytes) -> bool:
        if kind == b"Q":
            return INSERT in body
        if kind == b"P":  # name \0 query \0 ...
            name, query = body.split(b"\x00", 2)[:2]
            if INSERT in query:
                self.inserts.add(name)
                return True
            return False
        portal, statement = body.split(b"\x00", 2)[:2]  # Bind: portal \0 statement \0 ...
        return statement in self.inserts


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
