"""GET /ops: a plain server-rendered page for people in operations (no build step, no script).
Sign in with an operations or admin key (kept in an HttpOnly, SameSite=Strict cookie); the page
refreshes itself; admins get a replay button on dead deliveries."""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select

from services.api import deliveries, reports
from services.api.auth import Caller
from services.api.deps import Db, get_caller
from services.api.errors import Problem
from services.api.ops_data import report
from shared.domain.vocabulary import Role
from shared.models import Delivery

router = APIRouter(prefix="/ops", include_in_schema=False)
COOKIE = "hf_ops_key"
REFRESH_SECONDS = 10
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f3}
header{background:#23395d;color:#fff;padding:.8rem 1rem;display:flex;justify-content:space-between}
main{padding:1rem;display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;overflow-x:auto}
h2{font-size:1rem;margin:.2rem 0 .6rem}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums}
.n{text-align:right}.warn{color:#a33;font-weight:600}button{padding:.3rem .7rem}
form.inline{display:inline}input{padding:.4rem;width:100%;max-width:32rem}
"""


def page(title: str, body: str, *, refresh: bool) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">{meta}'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def table(headings: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(
        f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headings)
    )
    body = (
        "".join(
            "<tr>"
            + "".join(
                f"<td{' class=n' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row)
            )
            + "</tr>"
            for row in rows
        )
        or f'<tr><td colspan="{len(headings)}">none</td></tr>'
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def csrf_token(key: str) -> str:
    return hmac.new(key.encode(), b"ops-replay", hashlib.sha256).hexdigest()[:32]


async def caller_of_key(request: Request, key: str) -> Caller:
    """The caller behind a key from a cookie or a form (401 Problem if none)."""
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
    return await get_caller(request, credentials)


async def signed_in(request: Request) -> tuple[Caller, str] | None:
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    try:
        caller = await caller_of_key(request, key)
    except Problem:
        return None
    return (caller, key) if caller.role in (Role.operations, Role.admin) else None


LOGIN = """<header><strong>Housing First operations</strong></header><main><section>
<h2>Sign in</h2><form method="post" action="/ops/login"><p><label>Operations or admin API key<br>
<input name="key" type="password" autocomplete="off" required></label></p>
<button type="submit">Sign in</button>{error}</form></section></main>"""


@router.get("")
async def ops_page(request: Request, session: Db) -> Response:
    """The operations page (sign-in form when not signed in)."""
    who = await signed_in(request)
    if who is None:
        return page("Operations: sign in", LOGIN.format(error=""), refresh=False)
    caller, key = who
    figures = await report(session)
    summary = await reports.summary(session, caller, None)
    unmet = await reports.unmet(session, caller, None)
    dead = list(
        await session.scalars(
            select(Delivery)
            .where(Delivery.status == "dead")
            .order_by(Delivery.created_at.desc())
            .limit(20)
        )
    )
    queues = figures["queues"]
    queue_rows = [
        [
            q["name"],
            q["depth"],
            q["oldest_age_seconds"] if q["oldest_age_seconds"] is not None else "-",
        ]
        for q in queues or []
    ]
    broker = (
        ""
        if queues is not None
        else f'<p class="warn">Broker unreachable ({escape(str(figures["broker_error"]))})</p>'
    )
    workers = [
        [
            escape(w["hostname"]),
            escape(", ".join(w["queues"])),
            f"{w['last_seen_seconds_ago']} s ago",
        ]
        for w in figures["workers"]
    ]
    backlog = [
        ["events not yet acted on", figures["outbox_pending"]],
        ["oldest unprocessed event (s)", figures["outbox_oldest_age_seconds"] or 0],
        ["deliveries pending", figures["deliveries_pending"]],
        ["deliveries failing (will retry)", figures["deliveries_failing"]],
        ["deliveries dead", figures["deliveries_dead"]],
        ["tasks dead (their worker died each time)", figures["tasks_dead"]],
        ["support waiting for capacity", figures["support_pending_capacity"]],
    ]
    rounds = [
        [
            escape(r["region"]),
            r["started_at"][11:19],
            f"{r['duration_seconds'] * 1000:.0f} ms",
            r["offers"],
            r["people"],
            r["units"],
        ]
        for r in figures["match_rounds"][:15]
    ]
    admin = caller.role is Role.admin
    token = csrf_token(key)
    dead_rows = [
        [
            escape(d.event_type),
            escape(d.last_error or ""),
            d.attempts,
            (
                f'<form class="inline" method="post" action="/ops/deliveries/{escape(d.id)}/replay">'
                f'<input type="hidden" name="token" value="{token}">'
                f'<button type="submit" data-delivery="{escape(d.id)}">Replay</button></form>'
            )
            if admin
            else "-",
        ]
        for d in dead
    ]
    bands = summary["waiting_by_priority_band"]
    need = [
        [
            p["households_waiting"],
            p["occupants"],
            escape(p["access"]),
            "yes" if p["pets"] else "no",
            escape(", ".join(p["eligibility"]) or "-"),
            p["units_that_could_fit"],
        ]
        for p in unmet["profiles"][:12]
    ]
    body = (
        f"<header><strong>Housing First operations</strong><span>refreshes every {REFRESH_SECONDS} s · "
        f'<form class="inline" method="post" action="/ops/logout"><button>Sign out</button></form></span></header><main>'
        f'<section id="queues"><h2>Queues</h2>{broker}{table(["queue", "depth", "oldest (s)"], queue_rows, {1, 2})}</section>'
        f'<section id="workers"><h2>Workers</h2>{table(["worker", "consumes", "seen"], workers)}</section>'
        f'<section id="backlog"><h2>Backlog</h2>{table(["", "count"], backlog, {1})}</section>'
        f'<section id="waiting"><h2>Waiting by priority</h2>{table(["band", "people"], [[b, n] for b, n in bands.items()], {1})}</section>'
        f'<section id="matches"><h2>Recent matching rounds</h2>{table(["region", "at", "took", "offers", "people", "units"], rounds, {2, 3, 4, 5})}</section>'
        f'<section id="dead"><h2>Dead deliveries</h2>{table(["event", "last error", "attempts", ""], dead_rows, {2})}</section>'
        f'<section id="unmet"><h2>Unmet need</h2>{table(["households", "occupants", "access", "pets", "programmes", "units that fit"], need, {0, 1, 5})}</section>'
        "</main>"
    )
    return page("Operations", body, refresh=True)


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=200)]) -> Response:
    """Check the key and keep it in an HttpOnly cookie for this page only."""
    try:
        caller = await caller_of_key(request, key)
    except Problem:
        caller = None
    if caller is None or caller.role not in (Role.operations, Role.admin):
        error = '<p class="warn">That key is not an operations or admin key.</p>'
        return page("Operations: sign in", LOGIN.format(error=error), refresh=False)
    response = RedirectResponse("/ops", status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        path="/ops",
        secure=request.url.scheme == "https",
        max_age=8 * 3600,
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ops", status_code=303)
    response.delete_cookie(COOKIE, path="/ops")
    return response


@router.post("/deliveries/{delivery_id}/replay")
async def replay(
    delivery_id: str,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    token: Annotated[str, Form(max_length=64)],
) -> Response:
    """Admins replay a dead delivery from the page."""
    who = await signed_in(request)
    if who is None or who[0].role is not Role.admin:
        raise Problem(403, "Only admins may replay deliveries.")
    if not hmac.compare_digest(token, csrf_token(who[1])):
        raise Problem(403, "The form is stale; reload the page.")
    await deliveries.replay_delivery(delivery_id, background, session, who[0])
    return RedirectResponse("/ops", status_code=303)
