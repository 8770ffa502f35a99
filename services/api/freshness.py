"""What an API process may answer from memory: callers and availability markers, forgotten
as soon as the database says they changed.

Triggers (migration 20261127_change_notifications) NOTIFY `hf_changes` when units, API keys
or organizations change; notifications go out when the change commits, in commit order. One
thread per API process LISTENs and moves a generation per organization; a remembered value is
used only while the generation it was read under still holds, and never after MAX_AGE. So a
poll answered from memory is at most one notification behind (milliseconds after the commit).
A write answered by this process forgets the availability markers before its answer leaves,
so a client reads its own writes. (No API route changes a key or an organization: the callers
it remembers are forgotten only when the database says they changed.)

SQLite has no NOTIFY: there the same changes move counters in a table (migration
20261128_change_generations) that the thread reads every POLL_SECONDS on a connection of its
own, and each counter that moved counts as that notification. Without a listening connection
or a successful read (the connection lost) nothing is remembered and every request reads the
database.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "hf_changes"
MAX_AGE = 5.0  # seconds: a bound should a notification ever go missing
MOST_ENTRIES = 10_000  # per kind; beyond this, everything is forgotten and read again
RECONNECT_SECONDS = (0.5, 1, 2, 5)
STOP_CHECK_SECONDS = 0.1  # how often the listening thread looks up to see if it should stop
POLL_SECONDS = 0.01  # SQLite: how often the counters are read (about 20 µs of CPU each time)
GENERATIONS = "SELECT subject, generation FROM change_generations"

Token = tuple[int, ...]


class Watch:
    """One process's memory of callers and availability markers, and the thread that keeps
    it honest."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.live = False
        self._lock = threading.Lock()
        self._epoch = 0  # moves on (re)connecting
        self._writes = 0  # moves on every write this process answers
        self._units: Counter[str] = Counter()  # notifications per organization
        self._all_units = 0
        self._callers = 0
        self._remembered: dict[str, dict[Hashable, tuple[Token, float, Any]]] = {
            "marker": {},
            "caller": {},
        }
        self._seen_syncs: set[str] = set()
        self._synced = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generations: dict[str, int] = {}  # SQLite: the counters as last read
        self._reader: sqlite3.Connection | None = None
        self._reading = threading.Lock()  # one read of the counters at a time

    # The generations a remembered value is read under.

    def units_token(self, organization_id: str | None) -> Token | None:
        """For one organization's units (None: every unit, as an admin sees them)."""
        if not self.live:
            return None
        with self._lock:
            count = self._all_units if organization_id is None else self._units[organization_id]
            return self._epoch, self._writes, count

    def callers_token(self) -> Token | None:
        if not self.live:
            return None
        with self._lock:
            return self._epoch, self._callers

    def recall(self, kind: str, key: Hashable, token: Token | None) -> Any:
        """The value remembered under this token, or None."""
        if token is None:
            return None
        found = self._remembered[kind].get(key)
        if found is None or found[0] != token or time.monotonic() - found[1] > MAX_AGE:
            return None
        return found[2]

    def remember(self, kind: str, key: Hashable, token: Token | None, value: Any) -> None:
        """Keep a value read under `token` (taken before the read, so a change that commits
        during the read leaves it stale at once)."""
        if token is None:
            return
        with self._lock:
            kept = self._remembered[kind]
            if len(kept) >= MOST_ENTRIES:
                kept.clear()
            kept[key] = (token, time.monotonic(), value)

    def forget_markers(self) -> None:
        """This process wrote something: no marker read before counts any more."""
        with self._lock:
            self._writes += 1

    # Listening.

    def start(self) -> None:
        if self._thread:
            return
        url = make_url(self.database_url)
        if url.get_backend_name() == "postgresql":
            watching = self._listen
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            watching = self._poll
        else:
            return
        self._thread = threading.Thread(target=watching, name="change-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _conninfo(self) -> str:
        return make_url(self.database_url).set(drivername="postgresql").render_as_string(False)

    def _listen(self) -> None:
        self._keep_watching(self._hear_notifications, "change notifications lost")

    def _poll(self) -> None:
        self._keep_watching(self._read_counters, "change counters unread")

    def _keep_watching(self, watch: Callable[[], None], lost: str) -> None:
        """Run `watch` (connect, go live, hear changes until stopped) again after each loss;
        while it is not live, nothing remembered counts."""
        failures = 0
        while not self._stop.is_set():
            try:
                watch()
            except Exception:
                log.warning("%s; answering from the database", lost, exc_info=True)
                failures = 1 if self.live else failures + 1  # (a loss after going live: soon)
            finally:
                with self._lock:
                    self.live = False
                    self._epoch += 1
            self._stop.wait(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS)) - 1])

    def _go_live(self) -> None:
        with self._lock:
            self._epoch += 1
            self.live = True

    def _hear_notifications(self) -> None:
        """PostgreSQL: LISTEN, and apply each notification as it arrives."""
        with psycopg.connect(self._conninfo(), autocommit=True) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self._go_live()
            while not self._stop.is_set():
                for note in connection.notifies(timeout=STOP_CHECK_SECONDS):
                    self._apply(note.payload)

    def _read_counters(self) -> None:
        """SQLite: read the counters every POLL_SECONDS; each that moved is a notification."""
        reader = sqlite3.connect(
            str(make_url(self.database_url).database),
            timeout=5,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            with self._reading:
                self._reader = reader
                self._generations = dict(reader.execute(GENERATIONS).fetchall())
            self._go_live()
            while not self._stop.wait(POLL_SECONDS):
                self._read_generations()
        finally:
            with self._reading:
                self._reader = None
            reader.close()

    def _read_generations(self) -> None:
        with self._reading:
            if self._reader is None:
                raise sqlite3.ProgrammingError("not reading")
            for subject, generation in self._reader.execute(GENERATIONS):
                if self._generations.get(subject) != generation:
                    self._generations[subject] = generation
                    self._apply(subject)

    def _apply(self, payload: str) -> None:
        kind, _, subject = payload.partition(":")
        with self._lock:
            if kind == "units":
                self._units[subject] += 1
                self._all_units += 1
            elif kind == "callers":
                self._callers += 1
            elif kind == "sync":
                self._seen_syncs.add(subject)
                self._synced.notify_all()
            else:  # unknown: forget everything rather than guess
                self._epoch += 1

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every change committed before this call has been heard (a notification
        sent now arrives after all of theirs). For tests and tools; False if not listening."""
        if not self.live:
            return False
        if self._reader is not None:  # SQLite: read the counters now
            try:
                self._read_generations()
            except sqlite3.Error:
                return False
            return True
        token = secrets.token_hex(8)
        with psycopg.connect(self._conninfo(), autocommit=True) as connection:
            connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"sync:{token}"))
        with self._synced:
            heard = self._synced.wait_for(lambda: token in self._seen_syncs, timeout=timeout)
            self._seen_syncs.discard(token)
            return heard
