"""The task boundary: one transaction per task body, then publish the events it emitted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from shared.db import get_session_factory
from shared.outbox import mark_published, send, take_forwarded, take_pending

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def in_transaction(
    work: Callable[Concatenate[Session, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run `work(session, ...)` in one transaction, commit, then publish its outbox events
    (and forward what it asked to, shared/outbox.py forward_after_commit)."""
    factory: sessionmaker[Session] = get_session_factory()
    with factory() as session:
        try:
            result = work(session, *args, **kwargs)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        events, forward = take_pending(session), take_forwarded(session)
        if events or forward:
            sent = send(events, forward=forward)
            try:
                mark_published(session, sent)
                session.commit()
            except Exception:
                session.rollback()
                log.warning("could not mark events published; the relay will re-send them")
    return result
