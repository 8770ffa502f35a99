"""A webhook receiver for benchmarks (few imports, so it starts at once): answers 204 on
keep-alive connections and appends `referral_id arrival_time` for each support.assigned."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson


class Answer(asyncio.Protocol):
    """Reads each request (keep-alive) and answers 204 at once; `received` sees each body."""

    def connection_made(self, transport: Any) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            self.received(body)

    def received(self, body: bytes) -> None:
        pass


class Record(Answer):
    """Writes `referral_id arrival` lines for each support.assigned."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def received(self, body: bytes) -> None:
        arrived = time.time()
        message = orjson.loads(body)
        if message.get("type") == "support.assigned":
            self.out.write(f"{message['data']['referral_id']} {arrived}\n")
            self.out.flush()


def receive(port: int, path: str) -> None:
    async def forever() -> None:
        with Path(path).open("a") as out:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: Record(out), "127.0.0.1", port)
            await server.serve_forever()

    asyncio.run(forever())


if __name__ == "__main__":
    receive(int(sys.argv[1]), sys.argv[2])
