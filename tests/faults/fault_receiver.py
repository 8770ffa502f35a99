"""The support teams' webhook receiver: verifies every request with the official standardwebhooks
package, applies each webhook-id's effect once (as receivers must), and can go down (its port
closed: connection refused) and come back on the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from servers import free_port


class FaultReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.secrets: dict[str, str] = {}  # path -> whsec_ secret
        self.receipts: Counter[str] = Counter()  # webhook-id -> requests that carried it
        self.effects: dict[str, dict[str, Any]] = {}  # webhook-id -> payload, applied once
        self.refused = 0  # bad signatures
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.connections: list[socket.socket] = []
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.take(self.path, headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                connection, address = super().get_request()
                with receiver.lock:
                    receiver.connections.append(connection)
                return connection, address

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self) -> None:
        """Close the port: senders get connection refused until `up`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:  # and kept-alive connections: a host that is down answers nothing
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self.connections.clear()

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        secret = self.secrets.get(path)
        try:
            payload = Webhook(secret).verify(body, headers) if secret else None
        except Exception:
            payload = None
        with self.lock:
            if payload is None:
                self.refused += 1
                return 400
            webhook_id = headers["webhook-id"]
            self.receipts[webhook_id] += 1
            self.effects.setdefault(webhook_id, payload)  # the effect happens once per id
        return 204

    def ids_of(self, event_type: str) -> set[str]:
        with self.lock:
            return {i for i, payload in self.effects.items() if payload["type"] == event_type}
