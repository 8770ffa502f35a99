"""Throwaway PostgreSQL and Redis servers on loopback free ports, for test fixtures; stopped by
pid only. PostgreSQL refuses to run as root, so as root its commands run as ``postgres``."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

HOST = "127.0.0.1"
AS_ROOT = os.geteuid() == 0  # then PostgreSQL commands run as the postgres user


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (PID 1 here may never reap daemons)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _kill(pid: int, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid, timeout):
            return
    raise RuntimeError(f"process {pid} survived SIGKILL")


@dataclass
class Server:
    url: str
    pid: int
    port: int
    data_dir: Path

    def stop(self, timeout: float = 10.0) -> None:
        _kill(self.pid, timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pg_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if AS_ROOT:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def pg_bindir() -> Path:
    """Newest /usr/lib/postgresql/*/bin, else ``pg_config --bindir``."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()]
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "pg_ctl").exists():
            return Path(out.stdout.strip())
    raise RuntimeError("PostgreSQL server binaries not found")


@dataclass
class PostgresServer(Server):
    bindir: Path = field(default_factory=pg_bindir)
    cleanup_dir: Path | None = None
    options: str = ""

    def halt(self, mode: str = "immediate") -> None:
        """Stop the server as a crash would (`immediate`: no checkpoint, backends killed)."""
        stop = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w"]
        _pg_run(stop, self.data_dir.parent)
        if not _wait_gone(self.pid, 30):
            _kill(self.pid, 10)

    def resume(self) -> None:
        """Start it again on the same port and data (crash recovery replays the WAL)."""
        self.pid = _pg_start(self.bindir, self.data_dir, self.options)

    def stop(self, timeout: float = 30.0) -> None:
        stop = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"]
        _pg_run([*stop, "-w"], self.data_dir.parent)
        if not _wait_gone(self.pid, timeout):
            _kill(self.pid, timeout)
        if self.cleanup_dir is not None:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)


def _pg_start(bindir: Path, data: Path, opts: str) -> int:
    log = data.parent / "postgres.log"
    start = [str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l", str(log)]
    done = _pg_run([*start, "-o", opts], data.parent)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{tail}")
    return int((data / "postmaster.pid").read_text().split()[0])


def start_postgres(base_dir: Path, *, durable: bool = False) -> PostgresServer:
    """initdb a fresh trust-auth cluster, start it on a free port, create ``housingfirst``.
    `durable`: a commit is in the WAL before it is acknowledged (synchronous_commit on), so a
    crash of the server loses nothing acknowledged; fsync stays off (the machine does not crash)."""
    bindir = pg_bindir()
    root, cleanup = base_dir / "pg", None
    # The postgres user must reach the directory, and the socket path must stay short (< 108).
    closed = any(not p.stat().st_mode & 0o001 for p in [base_dir, *base_dir.parents] if p.exists())
    if (AS_ROOT and closed) or len(str(root)) > 80:
        root = cleanup = Path(tempfile.mkdtemp(prefix="hf-pg-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    if AS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", free_port()
    init = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    done = _pg_run([*init, "-E", "UTF8", "--locale=C", "--no-sync"], root)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
    commit = "on" if durable else "off"
    opts = (
        f"-h {HOST} -p {port} -k {shlex.quote(str(root))} -c fsync=off"
        f" -c synchronous_commit={commit} -c full_page_writes=off -c max_connections=300"
    )
    pid = _pg_start(bindir, data, opts)
    admin = f"postgresql://postgres@{HOST}:{port}/postgres"
    server = PostgresServer(
        admin, pid, port, data, bindir=bindir, cleanup_dir=cleanup, options=opts
    )
    try:
        server.url = create_database(admin, "housingfirst")
    except Exception:
        server.stop()
        raise
    return server


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@dataclass
class RedisServer(Server):
    appendonly: bool = True

    def restart(self, keep_data: bool = True) -> None:
        """Stop, optionally wipe the data directory (AOF and RDB), start again on the same port."""
        self.stop()
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.pid = _launch_redis(self.data_dir, self.port, self.appendonly)


def _launch_redis(data_dir: Path, port: int, appendonly: bool) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    pidfile = data_dir / "redis.pid"
    pidfile.unlink(missing_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--daemonize", "yes"]
    argv += ["--pidfile", str(pidfile), "--dir", str(data_dir)]
    argv += ["--logfile", str(data_dir / "redis.log"), "--save", ""]
    argv += ["--appendonly", "yes" if appendonly else "no", "--maxmemory-policy", "noeviction"]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 20
    with redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1) as client:
        while time.monotonic() < deadline:
            try:
                if pidfile.exists() and pidfile.read_text().strip() and client.ping():
                    return int(pidfile.read_text().strip())
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not answer PING; see {data_dir / 'redis.log'}")


def start_redis(base_dir: Path, *, appendonly: bool = True) -> RedisServer:
    data_dir, port = base_dir / "redis", free_port()
    pid = _launch_redis(data_dir, port, appendonly)
    return RedisServer(f"redis://{HOST}:{port}/0", pid, port, data_dir, appendonly=appendonly)
