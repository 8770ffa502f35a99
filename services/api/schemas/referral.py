"""Referral bodies: fit and priority facts only, never readiness conditions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StringConstraints, field_validator

from services.api.schemas.common import SOMETHING, AlwaysTrue, Area, Day, Region, Strict, Whole
from shared.domain.vocabulary import Gender, SupportIntensity

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=SOMETHING)
]
Contact = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class Person(Strict):
    name: Name
    date_of_birth: Day | None = None
    gender: Gender | None = None
    contact: Contact | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth(cls, value: date | None) -> date | None:
        if value is not None and not (date(1900, 1, 1) <= value <= datetime.now(UTC).date()):
            raise ValueError("date of birth must be between 1900-01-01 and today")
        return value


class Consent(Strict):
    share_with_providers: AlwaysTrue = Field(
        description="The person agreed to share with housing and support providers (required)."
    )


class Household(Strict):
    adults: Whole = Field(default=1, ge=1, le=20)
    children: Whole = Field(default=0, ge=0, le=20)
    pets: Whole = Field(default=0, ge=0, le=20)


class Needs(Strict):
    wheelchair: StrictBool = False
    step_free: StrictBool = False


class EligibilityFacts(Strict):
    veteran: StrictBool = False


class Areas(Strict):
    acceptable: list[Area] = Field(default_factory=list, max_length=50)
    avoid: list[Area] = Field(default_factory=list, max_length=50)


class PriorityInputs(Strict):
    vulnerability_score: Whole = Field(default=0, ge=0, le=100)
    months_homeless_last_3_years: Whole = Field(default=0, ge=0, le=36)
    nights_unsheltered_last_year: Whole = Field(default=0, ge=0, le=366)


class ReferralCreate(Strict):
    region: Region
    person: Person
    consent: Consent
    household: Household = Field(default_factory=Household)
    needs: Needs = Field(default_factory=Needs)
    eligibility: EligibilityFacts = Field(default_factory=EligibilityFacts)
    areas: Areas = Field(default_factory=Areas)
    support_intensity: SupportIntensity
    priority: PriorityInputs = Field(default_factory=PriorityInputs)


class PersonOut(BaseModel):
    name: str | None
    date_of_birth: date | None
    gender: str | None
    contact: str | None
    erased: bool


class OfferSummary(BaseModel):
    id: str
    unit_id: str
    status: str
    expires_at: datetime
    created_at: datetime


class SupportSummary(BaseModel):
    id: str
    team_id: str | None
    kind: str
    status: str


class ReferralOut(BaseModel):
    id: str
    region: str
    status: str
    person: PersonOut
    household: Household
    needs: Needs
    eligibility: EligibilityFacts
    areas: Areas
    support_intensity: str
    priority: PriorityInputs
    contact_needed: bool
    offer: OfferSummary | None = None
    support: SupportSummary | None = None
    created_at: datetime
    updated_at: datetime


class PersonUpdate(Strict):
    name: Name | None = None
    contact: Contact | None = None


class ReferralUpdate(Strict):
    """What outreach may change; each given section replaces the old one."""

    person: PersonUpdate | None = None
    household: Household | None = None
    needs: Needs | None = None
    areas: Areas | None = None
    priority: PriorityInputs | None = None


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None
    cursor: str | None
