"""The `housingfirst` command: run the API, workers and beat, migrate, and make keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated, Any

import typer

from shared.domain.vocabulary import OrganizationKind, Role
from shared.queue import Queue

app = typer.Typer(
    help="Housing First referral service.", no_args_is_help=True, pretty_exceptions_enable=False
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


APP = "services.api.app:create_app"


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from services.api.serving import can_share_port, serve_workers
    from shared.config import get_settings
    from shared.logs import dict_config

    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": dict_config("api", get_settings().log_level),
        "access_log": False,
        # Worker processes import the whole app before answering the supervisor's health
        # check; on a loaded 2-core machine that can take longer than uvicorn's 5 s default.
        "timeout_worker_healthcheck": 60,
        "proxy_headers": False,
    }
    if can_share_port(workers=workers, port=port):
        serve_workers(uvicorn.Config(APP, **options))
    else:
        uvicorn.run(APP, **options)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = ",".join(
        queue.value for queue in Queue
    ),
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    name: Annotated[str, typer.Option(help="Worker name (unique per machine).")] = "",
) -> None:
    """Run a Celery worker (matching, notifications, maintenance)."""
    import services.worker_signals  # noqa: F401  (JSON logs, heartbeats: before the worker starts)
    from shared.queue import celery_app

    for queue in queues.split(","):
        Queue(queue.strip())  # refuse unknown queue names early
    os.environ.setdefault(
        "HOUSINGFIRST_SERVICE", "matcher" if Queue.matching.value in queues else "notifier"
    )
    hostname = name or f"{queues.replace(',', '+')}-{os.getpid()}@%h"
    celery_app.worker_main(
        [
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            f"--hostname={hostname}",
            "--loglevel=WARNING",
            "--without-mingle",
            "--without-gossip",
        ]
    )


@app.command()
def beat() -> None:
    """Run the scheduler of the sweepers (outbox relay, expiries, retries)."""
    from shared import logs
    from shared.config import get_settings
    from shared.queue import celery_app

    settings = get_settings()
    logs.configure("beat", settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
    celery_app.start(["beat", "--loglevel=WARNING"])


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (waits for the database first)."""
    from shared.config import get_settings
    from shared.migrate import upgrade, wait_for_database

    url = get_settings().database_url
    wait_for_database(url)
    upgrade(url)
    typer.echo("database schema is up to date", err=True)


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization name (created if needed).")],
    kind: Annotated[OrganizationKind, typer.Option(help="Organization kind.")],
    role: Annotated[Role, typer.Option(help="The key's role.")],
    region: Annotated[str, typer.Option(help="A region the organization works in.")] = "",
) -> None:
    """Create an API key and print it (only the key, once) on stdout."""
    from services.keys import create_key
    from shared.db import unit_of_work

    with unit_of_work() as session:
        plain = create_key(session, org=org, kind=kind, role=role, region=region or None)
    typer.echo(plain)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key, or its lookup part (hf_<lookup>_...).")],
) -> None:
    """Revoke an API key at once (its next request answers 401)."""
    from services.keys import revoke_key
    from shared.db import unit_of_work

    with unit_of_work() as session:
        found = revoke_key(session, key=key)
    if not found:
        typer.echo("no such key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked", err=True)


CRASH_LOOP_EXITS = 5  # exits of one process within CRASH_LOOP_SECONDS before `up` gives up
CRASH_LOOP_SECONDS = 60


@app.command()
def up(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    host: Annotated[str, typer.Option(help="API interface.")] = "127.0.0.1",
) -> None:
    """Migrate, then run the API, matcher, notifier and beat together; Ctrl-C stops all."""
    from shared.config import get_settings
    from shared.migrate import upgrade

    os.environ["HOUSINGFIRST_ALLOW_LOOPBACK_WEBHOOK_TARGETS"] = "true"
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    me = [sys.executable, "-m", "services.cli"]
    children = {
        "api": [*me, "api", "--host", host, "--port", str(port)],
        "matcher": [*me, "worker", "--queues", "matching,maintenance", "--name", "matcher@%h"],
        "notifier": [*me, "worker", "--queues", "notifications", "--name", "notifier@%h"],
        "beat": [*me, "beat"],
    }
    say = typer.echo
    say(f"housingfirst: database {settings.database_url}")
    say(f"housingfirst: broker   {settings.broker_url}")
    say(
        "housingfirst: webhooks to loopback addresses allowed (local trial); private ranges refused"
    )
    processes = {name: subprocess.Popen(command) for name, command in children.items()}
    for name, process in processes.items():
        say(f"housingfirst: started {name} (pid {process.pid})")
    say(f"housingfirst: API on http://{host}:{port}  (docs at /docs). Ctrl-C stops everything.")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    exits: dict[str, list[float]] = {name: [] for name in processes}
    while not stopping:
        for name, process in list(processes.items()):
            if process.poll() is None or stopping:
                continue
            # Started again, as a process supervisor would (a worker exits when its broker
            # connection breaks in some ways); one that keeps failing stops everything.
            now = time.monotonic()
            exits[name] = [t for t in exits[name] if now - t < CRASH_LOOP_SECONDS] + [now]
            if len(exits[name]) > CRASH_LOOP_EXITS:
                say(
                    f"housingfirst: {name} keeps exiting ({process.returncode}); stopping", err=True
                )
                stopping, exit_code = True, 1
                break
            say(
                f"housingfirst: {name} exited with {process.returncode}; starting it again",
                err=True,
            )
            processes[name] = subprocess.Popen(children[name])
        time.sleep(0.2)
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    say("housingfirst: stopped")
    raise typer.Exit(exit_code)


@app.command()
def demo(
    region: Annotated[str, typer.Option(help="Region to fill.")] = "demo",
    people: Annotated[int, typer.Option(help="How many people (half housed over a year).")] = 300,
) -> None:
    """Fill a region with realistic synthetic data (people, homes, teams, a year of history)."""
    from services.demo import fill
    from shared.config import get_settings
    from shared.db import unit_of_work
    from shared.migrate import upgrade

    upgrade(get_settings().database_url)
    with unit_of_work() as session:
        keys = fill(session, region=region, people=people)
    typer.echo(f"region {region!r} filled. Keys (shown once):")
    for kind, key in (
        ("operations", keys.operations),
        ("outreach", keys.outreach),
        ("housing_provider", keys.provider),
        ("support_provider", keys.support),
    ):
        typer.echo(f"  {kind:17} {key}")


@app.command()
def bench() -> None:
    """Run the benchmarks (from a source checkout), each beside its baseline."""
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "__main__.py").exists():
        raise typer.BadParameter("benchmarks run from a source checkout (bench/ not found)")
    sys.path.insert(0, str(root))
    runpy.run_module("bench", run_name="__main__")


def main() -> None:
    """Console script entry point."""
    app()


if __name__ == "__main__":
    main()
