"""Concurrent intakes share transactions (services/api/intake.py): every request's rows are
written once, a repeated key answers with the first request's referral, and a request that
fails in a shared transaction fails alone."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from httpserver import serve_app
from services.api.app import create_app
from services.api.auth import Caller
from services.api.intake import Intake, Intakes
from services.api.referrals import fingerprint, referral_intake
from services.api.schemas.referral import ReferralCreate
from shared.config import Settings
from shared.db import make_async_engine, make_async_session_factory
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import AuditEvent, IdempotencyKey, Organization, OutboxEvent, Referral
from support import Stack, referral_body


def count(stack: Stack, model: Any) -> int:
    with stack.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def counting(intakes: Intakes) -> list[int]:
    """The size of each transaction the batcher runs, as they run."""
    sizes: list[int] = []
    transaction = intakes._transaction

    async def counted(batch: Any) -> list[Any]:
        sizes.append(len(batch))
        return await transaction(batch)

    intakes._transaction = counted  # type: ignore[method-assign]
    return sizes


def test_a_burst_shares_transactions_and_writes_each_referral_once(
    pg_stack: Stack, tmp_path: Path
) -> None:
    outreach = pg_stack.key(Role.outreach)
    app = create_app(Settings(database_url=pg_stack.database_url, data_dir=tmp_path))

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            posts = [
                client.post(
                    "/v1/referrals",
                    json=referral_body(),
                    headers={**outreach, "Idempotency-Key": f"burst-{number}"},
                )
                for number in range(50)
            ]
            posts += [
                client.post(
                    "/v1/referrals",
                    json=referral_body(),
                    headers={**outreach, "Idempotency-Key": "burst-repeated"},
                )
                for _ in range(10)
            ]
            return await asyncio.gather(*posts)

    with serve_app(app) as base:
        sizes = counting(app.state.intakes)
        responses = asyncio.run(burst(base))

    # then every post is answered 201, the repeated key always with the same referral
    assert [response.status_code for response in responses] == [201] * 60
    distinct = {response.json()["id"] for response in responses[:50]}
    repeated = {response.json()["id"] for response in responses[50:]}
    assert len(distinct) == 50 and len(repeated) == 1 and not distinct & repeated
    assert sum(1 for r in responses[50:] if r.headers.get("idempotent-replayed")) == 9
    # and each referral was written once, with its event, audit entry and kept answer
    for model in (Referral, IdempotencyKey, OutboxEvent):
        assert count(pg_stack, model) == 51, model
    with pg_stack.session() as session:
        created = select(func.count()).where(AuditEvent.action == "create")
        assert session.scalar(created.select_from(AuditEvent)) == 51
    # in fewer transactions than requests (each request in exactly one)
    assert sum(sizes) == 60 and len(sizes) < 60 and max(sizes) > 1


def test_a_request_failing_in_a_shared_transaction_fails_alone(stack: Stack) -> None:
    stack.key(Role.outreach, org="batch-outreach")
    with stack.session() as session:
        organization_id = session.scalar(
            select(Organization.id).where(Organization.name == "batch-outreach")
        )
    assert organization_id is not None

    def intake(organization: str, key: str) -> Intake:
        body = ReferralCreate.model_validate(referral_body())
        caller = Caller("key", organization, OrganizationKind.outreach, Role.outreach, ("north",))
        return referral_intake(body, caller, key, fingerprint(body))[0]

    async def submit_together(intakes: list[Intake]) -> list[Any]:
        engine = make_async_engine(stack.database_url)
        batcher = Intakes(make_async_session_factory(engine))
        sizes = counting(batcher)
        try:
            answers = await asyncio.gather(
                *(batcher.submit(one) for one in intakes), return_exceptions=True
            )
        finally:
            await engine.dispose()
        return [sizes, *answers]

    # given three good requests and one naming an organization that does not exist
    sizes, *answers = asyncio.run(
        submit_together(
            [
                intake(organization_id, "good-1"),
                intake("no-such-organization", "bad"),
                intake(organization_id, "good-2"),
                intake(organization_id, "good-3"),
            ]
        )
    )
    # when they share a transaction, it fails; then each runs alone
    assert sizes[0] == 4 and all(size == 1 for size in sizes[1:])
    # the good ones are written, the bad one gets its own error
    assert answers[0] is None and answers[2] is None and answers[3] is None
    assert isinstance(answers[1], Exception)
    assert count(stack, Referral) == 3 and count(stack, IdempotencyKey) == 3


def test_when_the_database_is_away_a_batch_is_answered_at_once(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    from servers import free_port

    # given a database nobody listens for (a closed port on this machine)
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"

    def intake(key: str) -> Intake:
        body = ReferralCreate.model_validate(referral_body())
        caller = Caller("key", "org", OrganizationKind.outreach, Role.outreach, ("north",))
        return referral_intake(body, caller, key, fingerprint(body))[0]

    async def submit_together() -> tuple[list[int], list[Any]]:
        engine = make_async_engine(url, pool_pre_ping=False)
        batcher = Intakes(make_async_session_factory(engine))
        sizes = counting(batcher)
        try:
            answers = await asyncio.gather(
                *(batcher.submit(intake(f"away-{n}")) for n in range(3)), return_exceptions=True
            )
        finally:
            await engine.dispose()
        return sizes, answers

    sizes, answers = asyncio.run(submit_together())
    # then one attempt answers all three with the failure (503 at the API), none tried alone
    assert sizes == [3]
    assert all(isinstance(answer, OperationalError) for answer in answers)
