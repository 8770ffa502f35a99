"""The API against its own OpenAPI document (schemathesis, in-process, a real admin key): every
operation fuzzed with all checks, `ignored_auth` included, and a stateful run along the
document's links from a matched world (offer, support assignment, webhook delivery). The run is
bounded (few examples, fixed seed) so it stays fast and the same on every machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.checks
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from services.api.app import create_app
from services.api.pagination import encode_cursor
from services.keys import create_key
from shared.config import Settings
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import Base
from support import Stack, referral_body, unit_body

# Examples per operation (about 40 operations) and scenarios of the stateful run.
EXAMPLES_PER_OPERATION = 8
SCENARIOS = 30
BOUNDED: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}

# The document's `cursor` format is a value this API returned: draw real ones.
schemathesis.openapi.format(
    "cursor",
    st.builds(
        encode_cursor,
        st.datetimes(timezones=st.just(UTC)),
        st.from_regex(r"[0-9a-f]{26}", fullmatch=True),
    ),
)
# Plausible dates (a birth date before 1900 or in the future is refused).
schemathesis.openapi.format(
    "date", st.dates(date(1900, 1, 1), datetime.now(UTC).date()).map(date.isoformat)
)

KEPT_TABLES = {"organizations", "api_keys"}


def excluded_checks(case: Any) -> list[Any]:
    """`use_after_free` on a referral: its DELETE erases the person's details and the
    de-identified referral stays readable (API.md), so it is not a deletion."""
    if case.operation.path.startswith("/v1/referrals/{referral_id}"):
        return [schemathesis.checks.use_after_free]
    return []


def fresh_idempotency_key(case: Any) -> None:
    """A client sends a new Idempotency-Key with each new request (a reused one with another
    body is refused with 422, as API.md says); missing or malformed keys are left to be tested."""
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and 1 <= len(key) <= 255:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex


@pytest.fixture
def admin(sqlite_url: str) -> str:
    """A real admin key (allowed on every operation, in every region)."""
    engine = make_engine(sqlite_url)
    try:
        with Session(engine) as session:
            key = create_key(
                session,
                org="contract admin",
                kind=OrganizationKind.operations,
                role=Role.admin,
                region="north",
            )
            session.commit()
    finally:
        engine.dispose()
    return key


@pytest.fixture
def api_schema(request: pytest.FixtureRequest, admin: str, sqlite_url: str, tmp_path: Path) -> Any:
    """The app on a fresh database and its served document; every call carries the admin key
    (and `ignored_auth` tries each operation with none and with a bad one)."""
    # schemathesis 4.32 reads `node._nodeid`, which pytest 9.2 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    # The rate limit has its own test; a fuzzer's burst from one key must not hide real answers.
    app = create_app(
        Settings(database_url=sqlite_url, data_dir=tmp_path, rate_limit_per_minute=1_000_000)
    )
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": admin}}},
            # Literals from the source are drawn for any string, also as cursors (answered 400).
            "analysis": {"constants": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **BOUNDED)
def test_every_operation_keeps_the_contract(case: Any) -> None:
    fresh_idempotency_key(case)
    case.call_and_validate(excluded_checks=excluded_checks(case))


PERSONAL = {"person", "name", "date_of_birth", "gender", "contact"}


def personal_examples(node: Any, field: str = "") -> Iterator[str]:
    """Where the document shows an example of, or containing, a personal field."""
    if isinstance(node, list):
        for item in node:
            yield from personal_examples(item, field)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("example", "examples") and (field in PERSONAL or PERSONAL & keys(value)):
                yield f"{field or '?'}: {value!r}"
            yield from personal_examples(value, key)


def keys(node: Any) -> set[str]:
    """Every object key at any depth."""
    if isinstance(node, dict):
        return set(node).union(*(keys(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(keys(item) for item in node))
    return set()


def test_the_served_document_chains_calls_and_keeps_personal_data_out(tmp_path: Path) -> None:
    document = TestClient(create_app(Settings(data_dir=tmp_path))).get("/openapi.json").json()
    intake = document["paths"]["/v1/referrals"]["post"]
    assert {"GetReferral", "UpdateReferral", "WithdrawReferral", "EraseReferral"} <= set(
        intake["responses"]["201"]["links"]
    )
    key = next(p for p in intake["parameters"] if p["name"] == "Idempotency-Key")
    assert key["required"] and key["schema"]["maxLength"] == 255
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status >= "400":
                    assert set(response["content"]) == {"application/problem+json"}, status
    assert list(personal_examples(document)) == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/referrals", "GET, POST"),  # served by two routers
        ("PUT", "/v1/referrals/x", "GET, PATCH, DELETE"),
        ("DELETE", "/v1/units/x", "GET, PATCH"),
    ],
)
def test_405_names_every_method_of_the_path(
    tmp_path: Path, method: str, path: str, allowed: str
) -> None:
    response = TestClient(create_app(Settings(data_dir=tmp_path))).request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"


def empty(engine: Engine) -> None:
    """Every row but the organizations and their keys."""
    with engine.begin() as connection:
        present = set(inspect(connection).get_table_names())
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in present and table.name not in KEPT_TABLES:
                connection.execute(table.delete())


def seed(api_schema: Any, admin: str, world: Stack) -> None:
    """A webhook endpoint, a support team, a unit and a referral, matched as the workers would:
    an open offer, a support assignment and deliveries for the links to reach."""
    headers = {"Authorization": f"Bearer {admin}"}
    for path, body in (
        ("/v1/webhook-endpoints", {"url": "https://hooks.example/in", "events": ["offer.created"]}),
        ("/v1/support-teams", {"region": "north", "kind": "act", "capacity": 5}),
        ("/v1/units", unit_body()),
        ("/v1/referrals", referral_body()),
    ):
        response = (
            api_schema[path]["POST"]
            .Case(body=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            .call()
        )
        assert response.status_code == 201, response.text
    world.settle()


def test_chained_calls_keep_the_contract(api_schema: Any, admin: str, sqlite_url: str) -> None:
    world = Stack(client=None, database_url=sqlite_url)  # type: ignore[arg-type]  # database only

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from the same world, so a replayed scenario meets the answers
            # it met the first time and Hypothesis can shrink it.
            empty(world.engine)
            seed(api_schema, admin, world)

        def before_call(self, case: Any) -> None:
            fresh_idempotency_key(case)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=excluded_checks(case),
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    try:
        Workflow.run(
            settings=settings(
                Workflow.TestCase.settings,
                max_examples=SCENARIOS,
                stateful_step_count=6,
                **BOUNDED,
            )
        )
    finally:
        world.engine.dispose()
