"""`housingfirst demo` fills a region the reports can show."""

from sqlalchemy import func, select

from oracle import check_invariants
from services.demo import fill
from shared.models import Offer, Tenancy, utcnow
from support import Stack


def test_demo_region_has_history_and_reports(stack: Stack) -> None:
    with stack.session() as session:
        keys = fill(session, region="demo", people=80)
    ops = {"Authorization": f"Bearer {keys.operations}"}
    summary = stack.client.get("/v1/reports/summary?region=demo", headers=ops).json()
    assert sum(summary["waiting_by_priority_band"].values()) > 0
    assert summary["days_referral_to_move_in"]["count"] == 40
    assert summary["retention"]["6_months"]["tenancies"] > 0
    assert stack.client.get("/v1/reports/unmet-need?region=demo", headers=ops).json()["profiles"]
    with stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Tenancy)) == 40
        assert session.scalar(select(func.count()).select_from(Offer).where(Offer.status == "open"))
        check_invariants(session, "demo", utcnow().date())
