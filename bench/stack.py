"""The service's processes on loopback for benchmarks: PostgreSQL and Redis (or the embedded
default), the API under uvicorn with 2 workers, Celery workers; peak RSS per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from bench.common import ROOT, cpu_seconds
from processes import environment
from servers import free_port, start_postgres, start_redis
from services.keys import create_key
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, Role
from shared.migrate import upgrade

REGION = "north"
CLI = [sys.executable, "-m", "services.cli"]
UVICORN = [sys.executable, "-m", "uvicorn"]


@dataclass
class Keys:
    outreach: dict[str, str]
    provider: dict[str, str]
    support: dict[str, str]
    outreach_org: str


@dataclass
class Stack:
    """Settings for child processes, the database URL, keys, and the processes started."""

    env: dict[str, str]
    database_url: str
    log_dir: Path
    keys: Keys | None = None
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        self.started[name] = process
        return process

    def api(self, name: str = "api", workers: int = 2) -> str:
        port = free_port()
        self.start(name, [*CLI, "api", "--port", str(port), "--workers", str(workers)])
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/healthz")
        return base

    def naive(self, workers: int = 2) -> str:
        port = free_port()
        argv = [*UVICORN, "bench.naive_app:app", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        self.start("naive", argv)
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/hello")
        return base

    def workers(self) -> None:
        """The matcher and the notifier (2 processes each, as `housingfirst up`), and beat."""
        self.start("matcher", [*CLI, "worker", "--queues", "matching,maintenance", "--name", "m"])
        self.start("notifier", [*CLI, "worker", "--queues", "notifications", "--name", "n"])
        self.start("beat", [*CLI, "beat"])

    def settle(self, timeout: float = 90) -> None:
        """Wait until the processes started have finished starting (imports take seconds of
        CPU on a busy machine): under a fifth of a core for a whole second."""
        deadline = time.monotonic() + timeout
        used = self._cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(1)
            now = self._cpu_seconds()
            if now - used < 0.2:
                return
            used = now

    def _cpu_seconds(self) -> float:
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each process started, with its live descendants (workers)."""
        return {
            name: sum(cpu_seconds(pid) for pid in [process.pid, *descendants(process.pid)])
            for name, process in self.started.items()
        }

    def peak_rss_mb(self, name: str) -> float:
        """The largest peak RSS (VmHWM) among the process and its descendants (workers)."""
        pids = [self.started[name].pid, *descendants(self.started[name].pid)]
        return max(peak_rss(pid) for pid in pids) / 1024

    def worker_pids(self, name: str) -> list[int]:
        return descendants(self.started[name].pid)

    def stop_all(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.started.clear()


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} never answered 200")


def peak_rss(pid: int) -> int:
    """VmHWM of a process in kB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def make_keys(database_url: str) -> Keys:
    engine = make_engine(database_url)
    plain: dict[str, str] = {}
    with Session(engine) as session:
        for name, kind, role in (
            ("bench outreach", OrganizationKind.outreach, Role.outreach),
            ("bench homes", OrganizationKind.housing_provider, Role.housing_provider),
            ("bench act", OrganizationKind.support_provider, Role.support_provider),
        ):
            plain[name] = create_key(session, org=name, kind=kind, role=role, region=REGION)
        session.commit()
        from sqlalchemy import select

        from shared.models import Organization

        outreach_org = session.scalar(
            select(Organization.id).where(Organization.name == "bench outreach")
        )
    engine.dispose()
    bearer = {name: {"Authorization": f"Bearer {key}"} for name, key in plain.items()}
    return Keys(
        bearer["bench outreach"], bearer["bench homes"], bearer["bench act"], str(outreach_org)
    )


SETTINGS = {
    "allow_private_webhook_targets": "true",
    "rate_limit_per_minute": str(10**8),  # one key sends all the load here
    "log_level": "WARNING",
}


@contextmanager
def postgres_stack(**settings: str) -> Iterator[Stack]:
    """PostgreSQL and Redis on free loopback ports, migrated, with keys; stopped afterwards."""
    with ExitStack() as stack:
        base = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hf-bench-", ignore_cleanup_errors=True)
            )
        )
        postgres = stack.enter_context(start_postgres(base))
        redis = stack.enter_context(start_redis(base, appendonly=False))
        upgrade(postgres.url)
        (base / "var").mkdir()
        env = environment(
            database_url=postgres.url,
            broker_url=redis.url,
            data_dir=str(base / "var"),
            **{**SETTINGS, **settings},
        )
        result = Stack(env, postgres.url, base)
        result.keys = make_keys(postgres.url)
        result.env["BENCH_ORGANIZATION_ID"] = result.keys.outreach_org
        try:
            yield result
        finally:
            result.stop_all()


@contextmanager
def embedded_stack(base: Path) -> Iterator[tuple[Stack, str]]:
    """`housingfirst up` on a fresh data folder (SQLite and the serverless broker)."""
    env = environment(data_dir=str(base / "var"), **SETTINGS)
    os.environ["HOUSINGFIRST_DATA_DIR"] = str(base / "var")
    from shared.config import Settings

    url = Settings(data_dir=base / "var").database_url
    upgrade(url)
    result = Stack(env, url, base)
    result.keys = make_keys(url)
    port = free_port()
    result.start("up", [*CLI, "up", "--port", str(port)])
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(base_url + "/readyz")
        yield result, base_url
    finally:
        result.stop_all()


def referral(number: int, headers: dict[str, str], **overrides: Any) -> tuple[str, str, Any, Any]:
    """The n-th intake request (API.md's example body, a fresh Idempotency-Key)."""
    body = {
        "region": REGION,
        "person": {"name": f"Sam {number}", "date_of_birth": "1979-04-02", "gender": "male",
                   "contact": "via St Mary's day centre"},
        "consent": {"share_with_providers": True},
        "household": {"adults": 1, "children": 0, "pets": 0},
        "needs": {"wheelchair": False, "step_free": False},
        "eligibility": {"veteran": False},
        "areas": {"acceptable": [], "avoid": ["harbour"]},
        "support_intensity": "high",
        "priority": {"vulnerability_score": 72, "months_homeless_last_3_years": 30,
                     "nights_unsheltered_last_year": 200},
        **overrides,
    }  # fmt: skip
    key = f"bench-{os.getpid()}-{time.monotonic_ns()}-{number}"
    return "POST", "/v1/referrals", {**headers, "Idempotency-Key": key}, body
