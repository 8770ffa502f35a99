"""The served OpenAPI document, completed: every error as problem+json, the statuses each
operation can answer, and links from an answer to the calls it makes possible (so a client, or a
stateful fuzzer, can chain them). It carries no examples, so no personal data."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from services.api.errors import PROBLEM_JSON, TITLES

Document = dict[str, Any]
Operation = dict[str, Any]

PROBLEM_SCHEMA: Document = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}
IDEMPOTENCY_KEY = "Idempotency-Key"
CURSOR = {"type": "string", "format": "cursor", "description": "A cursor this API returned."}
# Parameter schemas as API.md has them (FastAPI sees plain optional strings).
PARAMETERS: Document = {
    "cursor": CURSOR,
    "changed_since": {"anyOf": [{"type": "string", "format": "date-time"}, CURSOR]},
    IDEMPOTENCY_KEY: {"type": "string", "minLength": 1, "maxLength": 255},
}

# (method, path, status) of an answer -> {link name: (method, path, parameters of the target)}.
Target = tuple[str, str, dict[str, str]]
REFERRAL = "/v1/referrals/{referral_id}"
UNIT = "/v1/units/{unit_id}"
OFFER = "/v1/offers/{offer_id}"
TENANCY = "/v1/tenancies/{tenancy_id}"
ASSIGNMENT = "/v1/support-assignments/{assignment_id}"
ENDPOINT = "/v1/webhook-endpoints/{endpoint_id}"
DELIVERY = "/v1/deliveries/{delivery_id}"


def _referral(pointer: str) -> dict[str, Target]:
    ids = {"referral_id": pointer}
    return {
        "GetReferral": ("get", REFERRAL, ids),
        "UpdateReferral": ("patch", REFERRAL, ids),
        "WithdrawReferral": ("post", f"{REFERRAL}/withdraw", ids),
        "EraseReferral": ("delete", REFERRAL, ids),
    }


def _offer(pointer: str) -> dict[str, Target]:
    ids = {"offer_id": pointer}
    return {
        "GetOffer": ("get", OFFER, ids),
        "AcceptOffer": ("post", f"{OFFER}/accept", ids),
        "DeclineOffer": ("post", f"{OFFER}/decline", ids),
        "MoveIn": ("post", f"{OFFER}/move-in", ids),
    }


def _tenancy(pointer: str) -> dict[str, Target]:
    ids = {"tenancy_id": pointer}
    return {
        "GetTenancy": ("get", TENANCY, ids),
        "RecordAbsence": ("post", f"{TENANCY}/absences", ids),
        "EndTenancy": ("post", f"{TENANCY}/end", ids),
    }


def _assignment(pointer: str) -> dict[str, Target]:
    ids = {"assignment_id": pointer}
    return {
        "AcknowledgeSupport": ("post", f"{ASSIGNMENT}/acknowledge", ids),
        "StepDownSupport": ("post", f"{ASSIGNMENT}/step-down", ids),
        "ResumeSupport": ("post", f"{ASSIGNMENT}/resume", ids),
    }


def _unit(pointer: str) -> dict[str, Target]:
    ids = {"unit_id": pointer}
    return {"GetUnit": ("get", UNIT, ids), "UpdateUnit": ("patch", UNIT, ids)}


def _endpoint(pointer: str) -> dict[str, Target]:
    ids = {"endpoint_id": pointer}
    return {
        "GetWebhookEndpoint": ("get", ENDPOINT, ids),
        "UpdateWebhookEndpoint": ("patch", ENDPOINT, ids),
        "RotateWebhookSecret": ("post", f"{ENDPOINT}/rotate-secret", ids),
        "DeleteWebhookEndpoint": ("delete", ENDPOINT, ids),
    }


def _delivery(pointer: str) -> dict[str, Target]:
    ids = {"delivery_id": pointer}
    return {
        "GetDelivery": ("get", DELIVERY, ids),
        "ReplayDelivery": ("post", f"{DELIVERY}/replay", ids),
    }


FIRST = "$response.body#/items/0/id"
LINKS: dict[tuple[str, str, str], dict[str, Target]] = {
    ("post", "/v1/referrals", "201"): _referral("$response.body#/id"),
    ("get", "/v1/referrals", "200"): _referral(FIRST),
    ("get", REFERRAL, "200"): {
        **_offer("$response.body#/offer/id"),
        **_assignment("$response.body#/support/id"),
    },
    ("patch", REFERRAL, "200"): {
        "GetReferral": ("get", REFERRAL, {"referral_id": "$response.body#/id"})
    },
    ("post", "/v1/units", "201"): _unit("$response.body#/id"),
    ("patch", UNIT, "200"): _unit("$response.body#/id"),
    ("get", "/v1/offers", "200"): _offer(FIRST),
    ("get", OFFER, "200"): {
        "GetReferral": ("get", REFERRAL, {"referral_id": "$response.body#/referral_id"}),
        "GetUnit": ("get", UNIT, {"unit_id": "$response.body#/unit_id"}),
    },
    ("post", f"{OFFER}/move-in", "200"): _tenancy("$response.body#/id"),
    ("get", "/v1/tenancies", "200"): _tenancy(FIRST),
    ("post", f"{TENANCY}/absences", "201"): {
        "EndAbsence": (
            "post",
            f"{TENANCY}/absences/{{absence_id}}/end",
            {"tenancy_id": "$request.path.tenancy_id", "absence_id": "$response.body#/id"},
        )
    },
    ("get", "/v1/support-assignments", "200"): _assignment(FIRST),
    ("post", "/v1/webhook-endpoints", "201"): _endpoint("$response.body#/id"),
    ("get", "/v1/webhook-endpoints", "200"): _endpoint(FIRST),
    ("get", "/v1/deliveries", "200"): _delivery(FIRST),
}


def error_statuses(path: str, method: str, operation: Operation) -> list[int]:
    """The error statuses this operation can answer (each as problem+json)."""
    statuses = [500]
    if operation.get("security"):
        statuses += [401, 403, 429]
    if "{" in path:
        statuses.append(404)
    if method != "get" and ("{" in path or IDEMPOTENCY_KEY in _parameter_names(operation)):
        statuses.append(409)  # wrong state, or the same Idempotency-Key still in flight
    if method in ("post", "patch", "put"):
        statuses.append(413)
    if PARAMETERS.keys() & _parameter_names(operation) or "requestBody" in operation:
        statuses.append(400)  # a cursor it did not return, no Idempotency-Key, a body not UTF-8
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append(422)
    return statuses


def _parameter_names(operation: Operation) -> set[str]:
    return {parameter["name"] for parameter in operation.get("parameters", [])}


def complete(document: Document) -> Document:
    """The generated document with problem responses, a required Idempotency-Key, and links."""
    document = copy.deepcopy(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    operation_ids = {
        (method, path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, method, operation):
                response = responses.setdefault(str(status), {})
                response["description"] = response.get("description") or TITLES[status]
                response["content"] = problem
            for parameter in operation.get("parameters", []):
                parameter["schema"] = PARAMETERS.get(parameter["name"], parameter["schema"])
                if parameter["name"] == IDEMPOTENCY_KEY:  # API.md: required; missing answers 400
                    parameter["required"] = True
            for status, response in responses.items():
                targets = LINKS.get((method, path, status), {})
                links = {
                    name: {"operationId": operation_ids[target], "parameters": parameters}
                    for name, (target_method, target_path, parameters) in targets.items()
                    if (target := (target_method, target_path)) in operation_ids
                }
                if links:
                    response["links"] = links
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document (built once, on first use)."""
    generate: Callable[[], Document] = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
