"""A webhook receiver on loopback (plain asyncio, keep-alive): it records every request and
connection, and answers as scripted — any status and headers, slowly, or never."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # answer only once the receiver is released (or never)
    trickle: float = 0.0  # send the status line one byte at a time, this many seconds apart


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    script: deque[Reply] = field(default_factory=deque)
    default: Callable[[Received], Reply] = field(default=lambda _: Reply())
    release: Callable[[], None] = field(default=lambda: None)  # ends every hang

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, then with the default."""
        self.script.extend(replies)

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
            time.sleep(0.01)
        return list(self.requests)


def _head(reply: Reply) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} Scripted", "content-length: 2"]
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\nok").encode()


@contextmanager
def receiver(host: str = "127.0.0.1", path: str = "/hooks") -> Iterator[Receiver]:
    """A receiver listening on a free port of `host` until the block ends."""
    got = Receiver()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server_box: list[asyncio.Server] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(lines[0].split(" ")[1], headers, body)
                got.requests.append(request)
                reply = got.script.popleft() if got.script else got.default(request)
                if reply.hang:
                    await released.wait()
                await asyncio.sleep(reply.delay)
                answer = _head(reply)
                if reply.trickle:
                    for byte in answer:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(reply.trickle)
                else:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    released = asyncio.Event()
    got.release = lambda: loop.call_soon_threadsafe(released.set)

    async def start() -> None:
        server = await asyncio.start_server(serve, host, 0)
        server_box.append(server)
        port = server.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        got.url = f"http://{shown}:{port}{path}"
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        server_box[0].close()
        handlers = asyncio.all_tasks(loop)
        for handler in handlers:
            handler.cancel()
        loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise TimeoutError("receiver did not start")
    try:
        yield got
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
