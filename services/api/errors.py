"""RFC 9457 problem details for every error, including validation and unexpected ones."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as database
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.domain.lifecycle import InvalidTransition
from shared.domain.vocabulary import HOUSING_FIRST_RULE, is_readiness_term

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# The database cannot be reached or went away mid-request: nothing is promised, so the client
# retries (with the same Idempotency-Key, which makes a commit that did happen answer again).
DATABASE_UNAVAILABLE = (
    database.OperationalError,
    database.InterfaceError,
    database.DisconnectionError,
    database.TimeoutError,
)
RETRY_AFTER_SECONDS = 2
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error to answer as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _readiness_violation(error: dict[str, Any]) -> bool:
    """A validation error that is a readiness precondition smuggled into a body."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "extra_forbidden":
        return "eligibility" in loc or any(is_readiness_term(part) for part in loc)
    return "eligibility" in loc and error.get("type") in {"enum", "literal_error"}


def validation_problem(errors: list[dict[str, Any]]) -> JSONResponse:
    """422 listing each error; the Housing First rule is named when a readiness test is tried."""
    listed = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in errors
    ]
    if any(_readiness_violation(error) for error in errors):
        detail = HOUSING_FIRST_RULE
    else:
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in listed[:5])
    return problem_response(422, detail, errors=listed)


def allowed_methods(request: Request) -> str:
    """Every method served at the request's path (Starlette names only the first route's)."""
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    )


def install(app: FastAPI) -> None:
    """Register the problem+json handlers."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(list(exc.errors()))

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: InvalidTransition) -> JSONResponse:
        return problem_response(409, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem_response(exc.status_code, detail, headers=headers)

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem_response(
            503,
            "The database is unavailable right now; retry shortly (a referral with the same"
            " Idempotency-Key, so it is recorded once).",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return problem_response(500, "An unexpected error happened; it has been logged.")
