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

REFERRAL = "/v1/referrals/{referral_id}"
UNIT = "/v1/units/{unit_id}"
OFFER = "/v1/offers/{offer_id}"
TENANCY = "/v1/tenancies/{tenancy_id}"
ASSIGNMENT = "/v1/support-assignments/{assignment_id}"
ENDPOINT = "/v1/webhook-endpoints/{endpoint_id}"
DELIVERY = "/v1/deliveries/{delivery_id}"
# What can be done with an object, given its id: {link name: (method, path)}, by id parameter.
ACTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "referral_id": {
        "GetReferral": ("get", REFERRAL),
        "UpdateReferral": ("patch", REFERRAL),
        "WithdrawReferral": ("post", f"{REFERRAL}/withdraw"),
        "EraseReferral": ("delete", REFERRAL),
    },
    "unit_id": {"GetUnit": ("get", UNIT), "UpdateUnit": ("patch", UNIT)},
    "offer_id": {
        "GetOffer": ("get", OFFER),
        "AcceptOffer": ("post", f"{OFFER}/accept"),
        "DeclineOffer": ("post", f"{OFFER}/decline"),
        "MoveIn": ("post", f"{OFFER}/move-in"),
    },
    "tenancy_id": {
        "GetTenancy": ("get", TENANCY),
        "RecordAbsence": ("post", f"{TENANCY}/absences"),
        "EndTenancy": ("post", f"{TENANCY}/end"),
    },
    "assignment_id": {
        "AcknowledgeSupport": ("post", f"{ASSIGNMENT}/acknowledge"),
        "StepDownSupport": ("post", f"{ASSIGNMENT}/step-down"),
        "ResumeSupport": ("post", f"{ASSIGNMENT}/resume"),
    },
    "endpoint_id": {
        "GetWebhookEndpoint": ("get", ENDPOINT),
        "UpdateWebhookEndpoint": ("patch", ENDPOINT),
        "RotateWebhookSecret": ("post", f"{ENDPOINT}/rotate-secret"),
        "DeleteWebhookEndpoint": ("delete", ENDPOINT),
    },
    "delivery_id": {
        "GetDelivery": ("get", DELIVERY),
        "ReplayDelivery": ("post", f"{DELIVERY}/replay"),
    },
}
Target = tuple[str, str, dict[str, str]]


def actions(parameter: str, pointer: str) -> dict[str, Target]:
    """Links to every action on the object whose id the answer has at `pointer`."""
    return {
        name: (method, path, {parameter: pointer})
        for name, (method, path) in ACTIONS[parameter].items()
    }


ID, FIRST = "$response.body#/id", "$response.body#/items/0/id"
# (method, path, status) of an answer -> the calls it makes possible.
LINKS: dict[tuple[str, str, str], dict[str, Target]] = {
    ("post", "/v1/referrals", "201"): actions("referral_id", ID),
    ("get", "/v1/referrals", "200"): actions("referral_id", FIRST),
    ("get", REFERRAL, "200"): {
        **actions("offer_id", "$response.body#/offer/id"),
        **actions("assignment_id", "$response.body#/support/id"),
    },
    ("patch", REFERRAL, "200"): actions("referral_id", ID),
    ("post", "/v1/units", "201"): actions("unit_id", ID),
    ("patch", UNIT, "200"): actions("unit_id", ID),
    ("get", "/v1/offers", "200"): actions("offer_id", FIRST),
    ("get", OFFER, "200"): {
        **actions("referral_id", "$response.body#/referral_id"),
        **actions("unit_id", "$response.body#/unit_id"),
    },
    ("post", f"{OFFER}/accept", "200"): actions("offer_id", ID),
    ("post", f"{OFFER}/move-in", "200"): actions("tenancy_id", ID),
    ("get", "/v1/tenancies", "200"): actions("tenancy_id", FIRST),
    ("post", f"{TENANCY}/absences", "201"): {
        "EndAbsence": (
            "post",
            f"{TENANCY}/absences/{{absence_id}}/end",
            {"tenancy_id": "$request.path.tenancy_id", "absence_id": ID},
        )
    },
    ("get", "/v1/support-assignments", "200"): actions("assignment_id", FIRST),
    ("post", "/v1/webhook-endpoints", "201"): actions("endpoint_id", ID),
    ("get", "/v1/webhook-endpoints", "200"): actions("endpoint_id", FIRST),
    ("get", "/v1/deliveries", "200"): actions("delivery_id", FIRST),
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
            for code in error_statuses(path, method, operation):
                responses.setdefault(str(code), {"description": TITLES[code]})
            for parameter in operation.get("parameters", []):
                parameter["schema"] = PARAMETERS.get(parameter["name"], parameter["schema"])
                if parameter["name"] == IDEMPOTENCY_KEY:  # API.md: required; missing answers 400
                    parameter["required"] = True
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = problem
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
