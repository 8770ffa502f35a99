"""Which regions a caller may act in."""

from __future__ import annotations

from services.api.auth import Caller
from services.api.errors import Problem
from shared.domain.vocabulary import Role


def check_region(caller: Caller, region: str) -> None:
    """422 unless the region is one of the caller's organization's regions (admins: any)."""
    if caller.role is Role.admin or region in caller.regions:
        return
    raise Problem(
        422,
        f"Region {region!r} is not one of your organization's regions.",
        errors=[{"loc": ["body", "region"], "msg": "not one of your organization's regions"}],
    )
