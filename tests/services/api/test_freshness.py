"""Polls answered from memory (services/api/freshness.py): exact while changes are heard
(PostgreSQL's notifications, SQLite's counters), never used when they are not, and always
the route's own answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text, update

from services.api.freshness import Watch
from shared.domain.vocabulary import Role
from shared.models import Unit, utcnow
from support import Stack


def watch_of(stack: Stack) -> Watch:
    watch: Watch = stack.client.app.state.watch  # type: ignore[attr-defined]
    return watch


def live(stack: Stack) -> Watch:
    watch = watch_of(stack)
    deadline = time.monotonic() + 10
    while not watch.live:
        assert time.monotonic() < deadline, "the API never started listening"
        time.sleep(0.05)
    return watch


@contextmanager
def statements(stack: Stack) -> Iterator[list[str]]:
    """The SQL the API process runs meanwhile (once the events it sent before are marked
    published, which it does a moment after their request)."""
    stack.published()
    seen: list[str] = []
    engine = stack.client.app.state.engine.sync_engine  # type: ignore[attr-defined]

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def poll(stack: Stack, headers: dict[str, str], tag: str, query: str = "") -> int:
    response = stack.client.get(
        f"/v1/availability{query}", headers={**headers, "If-None-Match": tag}
    )
    return response.status_code


def polling_provider(stack: Stack) -> tuple[dict[str, str], dict[str, Any], str]:
    """Given a provider with one unit that has polled once, and whose repeated poll is 304
    (that one reads the key and the marker again, and keeps them)."""
    live(stack)
    provider = stack.key(Role.housing_provider)
    unit = stack.post_unit(provider)
    tag = stack.client.get("/v1/availability", headers=provider).headers["etag"]
    assert poll(stack, provider, tag) == 304
    return provider, unit, tag


def test_a_repeated_poll_reads_nothing_until_a_unit_changes_elsewhere(stack: Stack) -> None:
    provider, unit, tag = polling_provider(stack)
    with statements(stack) as seen:
        for _ in range(5):
            assert poll(stack, provider, tag) == 304
    assert seen == []
    # given a worker changes the unit (another connection, as another process would)
    with stack.session() as session:
        session.execute(update(Unit).where(Unit.id == unit["id"]).values(updated_at=utcnow()))
    # then the next poll sees it
    assert poll(stack, provider, tag) == 200


def test_own_writes_are_read_at_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    provider, unit, tag = polling_provider(stack)
    # given the notification of the write would come late (here: never)
    monkeypatch.setattr(watch_of(stack), "_apply", lambda payload: None)
    patched = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=provider
    )
    assert patched.status_code == 200
    assert poll(stack, provider, tag) == 200  # the write itself made the process forget


def test_the_fast_answer_is_the_routes_answer(stack: Stack) -> None:
    live(stack)
    provider = stack.key(Role.housing_provider)
    stack.post_unit(provider, region="north")
    watch = watch_of(stack)
    cursor = stack.client.get("/v1/availability", headers=provider).json()["cursor"]
    for query in ("", "?region=north", "?region=", f"?changed_since={cursor}"):
        full = stack.client.get(f"/v1/availability{query}", headers=provider)
        assert full.status_code == 200, query
        tag = full.headers["etag"]
        conditional = {**provider, "If-None-Match": tag}
        watch.forget_markers()
        with statements(stack) as seen:
            routed = stack.client.get(f"/v1/availability{query}", headers=conditional)
        assert seen, "the route read the marker"
        with statements(stack) as seen:
            fast = stack.client.get(f"/v1/availability{query}", headers=conditional)
        assert not seen, "answered from memory"
        assert routed.status_code == fast.status_code == 304 and fast.content == b""
        assert fast.headers["x-request-id"] != routed.headers["x-request-id"]
        assert {**fast.headers, "x-request-id": ""} == {**routed.headers, "x-request-id": ""}
        assert "nosniff" in fast.headers["x-content-type-options"]  # the guards still ran
        other = poll(stack, provider, tag, "?region=south" if query else "?region=north")
        assert other == 200
    # a wrong secret for a remembered key, another role, a wrong tag: the route's answers
    lookup = provider["Authorization"].rsplit("_", 1)[0]
    assert poll(stack, {"Authorization": f"{lookup}_wrong"}, tag) == 401
    assert poll(stack, stack.key(Role.outreach), tag) == 403
    assert poll(stack, provider, '"nope"') == 200
    assert poll(stack, provider, tag, "?region=north&region=north") in (200, 304)


def test_a_revoked_key_is_refused_once_heard(stack: Stack) -> None:
    from services.keys import revoke_key

    provider, _, tag = polling_provider(stack)
    with stack.session() as session:  # (waits until the API heard of it)
        assert revoke_key(session, key=provider["Authorization"].removeprefix("Bearer "))
    assert poll(stack, provider, tag) == 401


def test_without_notifications_nothing_is_remembered(pg_stack: Stack) -> None:
    stack = pg_stack
    provider, unit, tag = polling_provider(stack)
    watch = watch_of(stack)
    # given the listening connection is cut (and kept away while the unit changes)
    with stack.engine.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
            )
        )
    deadline = time.monotonic() + 10
    while watch.live:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with stack.engine.begin() as connection:  # no waiting for a notification here
        connection.execute(update(Unit).where(Unit.id == unit["id"]).values(updated_at=utcnow()))
    fresh = stack.client.get("/v1/availability", headers=provider).headers["etag"]
    # then every answer is read from the database, before and after listening resumes
    assert fresh != tag and poll(stack, provider, tag) == 200
    assert poll(stack, provider, fresh) == 304
    live(stack)
    assert poll(stack, provider, fresh) == 304 and poll(stack, provider, tag) == 200


def test_without_the_counters_nothing_is_remembered_on_sqlite(stack: Stack) -> None:
    if stack.engine.dialect.name != "sqlite":
        pytest.skip("the counters are SQLite's; PostgreSQL notifies (the test above)")
    provider, unit, tag = polling_provider(stack)
    watch = watch_of(stack)
    # given the counters cannot be read (and stay unread while the unit changes)
    with stack.engine.begin() as connection:
        connection.execute(text("ALTER TABLE change_generations RENAME TO hidden_generations"))
    deadline = time.monotonic() + 10
    while watch.live:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with stack.engine.begin() as connection:
        connection.execute(update(Unit).where(Unit.id == unit["id"]).values(updated_at=utcnow()))
    # then every answer is read from the database, before and after reading resumes
    fresh = stack.client.get("/v1/availability", headers=provider).headers["etag"]
    assert fresh != tag and poll(stack, provider, tag) == 200
    with stack.engine.begin() as connection:
        connection.execute(text("ALTER TABLE hidden_generations RENAME TO change_generations"))
    live(stack)
    assert poll(stack, provider, fresh) == 304 and poll(stack, provider, tag) == 200
