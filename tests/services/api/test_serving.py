"""`housingfirst api --workers 2` (services/api/serving.py): each worker accepts on a socket of
its own, so new connections are spread over the workers instead of going to whichever wakes
first; a port already taken still stops the command."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from processes import COMMAND, ROOT, descendants, environment, processes, run, wait_ready
from servers import free_port

CONNECTIONS = 64


def sockets_of(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def on_port(port: int, state: str) -> set[str]:
    """Socket inodes of the server side of loopback sockets of the port in this TCP state."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


ESTABLISHED, LISTEN = "01", "0A"


def test_connections_are_spread_over_the_workers(sqlite_url: str, tmp_path: Path) -> None:
    env = environment(database_url=sqlite_url, data_dir=str(tmp_path))
    port = free_port()
    with processes(env, tmp_path) as group:
        api = group.start("api", ["api", "--port", str(port), "--workers", "2"])
        wait_ready(f"http://127.0.0.1:{port}")
        workers = [
            pid
            for pid in descendants(api.pid)
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(workers) == 2, group.logs()
        deadline = time.monotonic() + 120
        while not all(sockets_of(pid) & on_port(port, LISTEN) for pid in workers):
            assert time.monotonic() < deadline, "each worker listens on a socket of its own"
            time.sleep(0.1)
        # when 64 connections are opened at once
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        try:
            for client in clients:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for client in clients:
                assert client.recv(64).startswith(b"HTTP/1.1 200"), "every connection is served"
            # then each worker holds a fair share of them (a hash over 64 connections: below
            # 12 for one worker happens about once in 3 million)
            server_side = on_port(port, ESTABLISHED)
            held = [len(sockets_of(pid) & server_side) for pid in workers]
            assert sum(held) == CONNECTIONS, held
            assert min(held) >= 12, held
        finally:
            for client in clients:
                client.close()


def test_a_port_in_use_stops_the_command(sqlite_url: str, tmp_path: Path) -> None:
    env = environment(database_url=sqlite_url, data_dir=str(tmp_path))
    run(["migrate"], env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [*COMMAND, "api", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert result.returncode != 0
    assert b"Address already in use" in result.stderr + result.stdout
    assert time.monotonic() - started < 60


def test_a_worker_that_cannot_bind_fails_as_a_failed_start() -> None:
    """uvicorn's supervisor stops on this exit code instead of restarting the worker forever."""
    from uvicorn.config import STARTUP_FAILURE

    from services.api.serving import listening_socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exited:
            listening_socket("127.0.0.1", taken.getsockname()[1])
    assert exited.value.code == STARTUP_FAILURE
