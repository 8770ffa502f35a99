"""Start `housingfirst` commands as real processes for end-to-end tests; stop them by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "services.cli"]


def environment(**settings: str) -> dict[str, str]:
    """The process environment with HOUSINGFIRST_ settings replaced by the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSINGFIRST_")}
    env.update({f"HOUSINGFIRST_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(args: list[str], env: dict[str, str]) -> str:
    """Run a command to completion; its stdout."""
    result = subprocess.run(
        [*COMMAND, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Processes:
    """Child processes started by a test, each stopped by its own pid."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [*COMMAND, *args], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.started[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.started.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)

    def logs(self) -> str:
        """Each process's errors and the end of its log."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            errors = [line for line in text.splitlines() if "Error" in line or "Traceback" in line]
            parts.append(f"--- {path.name}\n" + "\n".join(errors[:40]) + "\n..." + text[-3000:])
        return "\n".join(parts)


@contextmanager
def processes(env: dict[str, str], log_dir: Path) -> Iterator[Processes]:
    group = Processes(env, log_dir)
    try:
        yield group
    finally:
        group.stop_all()


def wait_ready(base_url: str, timeout: float = 180) -> None:
    """Wait until /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} never became ready")


def descendants(pid: int) -> list[int]:
    """The process and everything it started (a Celery worker's pool), children first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found[::-1]
