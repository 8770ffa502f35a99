"""A load generator on loopback: asyncio aiohttp with a fixed number of connections, bounded by
a count of requests and a time, or requests at a fixed rate; latencies and requests/s.

aiohttp, not httpx: an httpx AsyncClient with 64 connections spends 6-12 ms of CPU per request
here (its pool's bookkeeping grows with its size, encode/httpx#3215), so on 2 cores the load
generator, not the server, was what the benchmarks measured. aiohttp spends well under 1 ms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

CONNECTIONS = 64

# (method, path, headers, json body or None) for the n-th request
Make = Callable[[int], tuple[str, str, dict[str, str], Any]]


@dataclass
class Result:
    """One measurement: completed requests, seconds, latencies (s), unexpected answers."""

    completed: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    unexpected: int = 0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def client(base_url: str, connections: int = CONNECTIONS) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def send(
    http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str], body: Any
) -> tuple[int, bytes]:
    """One request; its status and body."""
    if body is not None:
        headers = {**headers, "content-type": "application/json"}
    data = orjson.dumps(body) if body is not None else None
    async with http.request(method, path, headers=headers, data=data) as answer:
        return answer.status, await answer.read()


async def _closed_loop(
    base_url: str, make: Make, expect: int, count: int, seconds: float, connections: int
) -> Result:
    async with client(base_url, connections) as http:
        numbers = iter(range(10**9))
        latencies: list[float] = []
        unexpected = 0

        async def one(number: int) -> None:
            nonlocal unexpected
            method, path, headers, body = make(number)
            started = time.perf_counter()
            try:
                status, _ = await send(http, method, path, headers, body)
            except (aiohttp.ClientError, TimeoutError):
                unexpected += 1
                return
            latencies.append(time.perf_counter() - started)
            unexpected += status != expect

        await asyncio.gather(*(one(next(numbers)) for _ in range(connections)))  # warm up
        latencies.clear()
        unexpected = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            while len(latencies) < count and time.perf_counter() < deadline:
                await one(next(numbers))

        await asyncio.gather(*(worker() for _ in range(connections)))
        return Result(len(latencies), time.perf_counter() - started, latencies, unexpected)


def closed_loop(
    base_url: str,
    make: Make,
    *,
    expect: int,
    count: int = 20_000,
    seconds: float = 8.0,
    connections: int = CONNECTIONS,
) -> Result:
    """`connections` requests always in flight until `count` are done or `seconds` have passed."""
    return asyncio.run(_closed_loop(base_url, make, expect, count, seconds, connections))


async def _fixed_rate(
    base_url: str, make: Make, expect: int, per_second: float, seconds: float
) -> tuple[Result, list[tuple[Any, float]]]:
    """Requests started every 1/per_second s; each answer's JSON and its wall-clock arrival."""
    async with client(base_url) as http:
        answers: list[tuple[Any, float]] = []
        latencies: list[float] = []
        unexpected = 0

        async def one(number: int) -> None:
            nonlocal unexpected
            method, path, headers, body = make(number)
            started = time.perf_counter()
            try:
                status, content = await send(http, method, path, headers, body)
            except (aiohttp.ClientError, TimeoutError):
                unexpected += 1
                return
            arrived = time.time()
            latencies.append(time.perf_counter() - started)
            if status == expect:
                answers.append((orjson.loads(content), arrived))
            else:
                unexpected += 1

        started = time.perf_counter()
        tasks = []
        for number in range(int(per_second * seconds)):
            await asyncio.sleep(max(0.0, started + number / per_second - time.perf_counter()))
            tasks.append(asyncio.create_task(one(number)))
        await asyncio.gather(*tasks)
        result = Result(len(latencies), time.perf_counter() - started, latencies, unexpected)
        return result, answers


def fixed_rate(
    base_url: str, make: Make, *, expect: int, per_second: float, seconds: float
) -> tuple[Result, list[tuple[Any, float]]]:
    return asyncio.run(_fixed_rate(base_url, make, expect, per_second, seconds))
