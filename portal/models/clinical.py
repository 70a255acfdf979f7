from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from kpis import dataset as ds
from portal import clock
from portal.journey.rules.direct_care import fold_name
from portal.models.base import Base, one_of


class Patient(Base):
    """A patient of one service (the same person seen by two services is two patients)."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("service_id", "nhs_number"),
        CheckConstraint("length(nhs_number) = 10", name="nhs_number_ten_digits"),
        one_of("sex", ds.SEXES),
        one_of("care_home_resident", ds.YES_NO_UNKNOWN),
        # For direct care (migration 0008): a hospital number names one patient of a service.
        Index(
            "uq_patients_service_id_hospital_number", "service_id", "hospital_number", unique=True
        ),
        one_of("interpreter_needed", ds.YES_NO_UNKNOWN),
        Index("ix_patients_service_id_family_name_search", "service_id", "family_name_search"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    nhs_number: Mapped[str] = mapped_column(String(10))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(20))
    postcode: Mapped[str | None] = mapped_column(String(10))
    care_home_resident: Mapped[str | None] = mapped_column(String(20))
    date_of_death: Mapped[date | None] = mapped_column(Date)
    # For direct care (dataset.md): patient-identifiable, never in the FLS-DB format or on
    # public pages, URLs or logs.
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    hospital_number: Mapped[str | None] = mapped_column(String(20))
    phone: Mapped[str | None] = mapped_column(String(100))
    gp_practice: Mapped[str | None] = mapped_column(String(200))
    gp_practice_code: Mapped[str | None] = mapped_column(String(6))
    preferred_language: Mapped[str | None] = mapped_column(String(50))
    interpreter_needed: Mapped[str | None] = mapped_column(String(20))
    # The names as the search compares them (case and accents set aside), kept with every write.
    given_name_search: Mapped[str | None] = mapped_column(String(100))
    family_name_search: Mapped[str | None] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=clock.utcnow, onupdate=clock.utcnow
    )

    service = relationship("Service")
    episodes: Mapped[list[Episode]] = relationship(
        back_populates="patient", order_by="Episode.fracture_date"
    )

    __mapper_args__ = {"version_id_col": version}

    @validates("given_name", "family_name")
    def _keep_search_name(self, key: str, value: str | None) -> str | None:
        setattr(self, f"{key}_search", fold_name(value))
        return value

    @property
    def name(self) -> str:
        """The patient's name as a letter or list shows it, or "" when not recorded."""
        return " ".join(part for part in (self.given_name, self.family_name) if part)


class Episode(Base):
    """One index fracture of a patient and every stage of its journey."""

    __tablename__ = "episodes"
    __table_args__ = (
        UniqueConstraint("patient_id", "fracture_date"),
        # KPI cohorts are read by fracture month across services: see docs/benchmarks.md.
        Index("ix_episodes_fracture_date", "fracture_date"),
        # One service's live episodes in a run of months (its KPI page and run charts). Partial:
        # the app only ever reads live episodes by service and date. A scan of every service
        # never walks it, nor do the worklists (kpis.sql.unindexed; docs/bench-kpis.md), which
        # have partial indexes of their own (portal/models/waiting.py).
        Index(
            "ix_episodes_live_service_fracture_date",
            "service_id",
            "fracture_date",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        one_of("admitted", ds.YES_NO_UNKNOWN),
        one_of("previous_fracture", ds.YES_NO_UNKNOWN),
        one_of("parental_hip_fracture", ds.YES_NO_UNKNOWN),
        one_of("smoker", ds.SMOKER),
        one_of("on_bone_therapy_at_fracture", ds.YES_NO_UNKNOWN),
        one_of("dxa_status", ds.DXA_STATUS),
        one_of("dxa_not_recommended_reason", ds.DXA_NOT_RECOMMENDED_REASONS),
        one_of("falls_assessed", ds.YES_NO_UNKNOWN),
        one_of("falls_referred", ds.YES_NO_UNKNOWN),
        one_of("calcium_vitd", ds.YES_NO_UNKNOWN),
        one_of("followup16_done", ds.YES_NO_UNKNOWN),
        one_of("therapy16", ds.FOLLOWUP_THERAPY),
        one_of("strength_balance16", ds.YES_NO_UNKNOWN),
        one_of("followup52_done", ds.YES_NO_UNKNOWN),
        one_of("therapy52", ds.FOLLOWUP_THERAPY),
        one_of("refracture", ds.YES_NO_UNKNOWN),
        # Added with issue 19.
        *(one_of(name, ds.CHOICES[name]) for name in ds.ADDED_FIELDS if name in ds.CHOICES),
        CheckConstraint(
            "frax_hip_percent IS NULL OR frax_hip_percent BETWEEN 0 AND 100",
            name="frax_hip_percent",
        ),
        CheckConstraint(
            "refracture_count IS NULL OR refracture_count BETWEEN 1 AND 20",
            name="refracture_count",
        ),
        CheckConstraint("fracture_date >= '2016-01-01'", name="fracture_date_from_2016"),
        CheckConstraint("height_cm IS NULL OR height_cm BETWEEN 100 AND 230", name="height_cm"),
        CheckConstraint("weight_kg IS NULL OR weight_kg BETWEEN 25 AND 250", name="weight_kg"),
        CheckConstraint("t_score IS NULL OR t_score BETWEEN -7 AND 4", name="t_score"),
        CheckConstraint(
            "frax_major_percent IS NULL OR frax_major_percent BETWEEN 0 AND 100",
            name="frax_major_percent",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # The earlier episode of the same patient when this fracture is a refracture.
    previous_episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id"))

    # Identification
    fracture_date: Mapped[date] = mapped_column(Date)
    identification_date: Mapped[date | None] = mapped_column(Date)
    admitted: Mapped[str | None] = mapped_column(String(20))
    # Multi-value fields are kept as ';'-joined values in dataset.md order.
    fracture_sites: Mapped[str | None] = mapped_column(String(100))
    # Assessment
    assessment_date: Mapped[date | None] = mapped_column(Date)
    height_cm: Mapped[float | None] = mapped_column(Numeric(4, 1, asdecimal=False))
    weight_kg: Mapped[float | None] = mapped_column(Numeric(4, 1, asdecimal=False))
    previous_fracture: Mapped[str | None] = mapped_column(String(20))
    parental_hip_fracture: Mapped[str | None] = mapped_column(String(20))
    smoker: Mapped[str | None] = mapped_column(String(20))
    on_bone_therapy_at_fracture: Mapped[str | None] = mapped_column(String(20))
    dxa_status: Mapped[str | None] = mapped_column(String(20))
    dxa_not_recommended_reason: Mapped[str | None] = mapped_column(String(40))
    dxa_date: Mapped[date | None] = mapped_column(Date)
    t_score: Mapped[float | None] = mapped_column(Numeric(2, 1, asdecimal=False))
    frax_major_percent: Mapped[float | None] = mapped_column(Numeric(4, 1, asdecimal=False))
    falls_assessed: Mapped[str | None] = mapped_column(String(20))
    falls_referred: Mapped[str | None] = mapped_column(String(20))
    # Treatment recommendation
    bone_therapy: Mapped[str | None] = mapped_column(String(300))
    calcium_vitd: Mapped[str | None] = mapped_column(String(20))
    # Monitoring at 12-16 weeks
    followup16_done: Mapped[str | None] = mapped_column(String(20))
    followup16_date: Mapped[date | None] = mapped_column(Date)
    therapy16: Mapped[str | None] = mapped_column(String(40))
    strength_balance16: Mapped[str | None] = mapped_column(String(20))
    # Follow-up at 12 months
    followup52_done: Mapped[str | None] = mapped_column(String(20))
    followup52_date: Mapped[date | None] = mapped_column(Date)
    therapy52: Mapped[str | None] = mapped_column(String(40))
    refracture: Mapped[str | None] = mapped_column(String(20))
    # Why a follow-up was not done (the nurse's day, migration 0008; not an FLS-DB field).
    followup16_not_done_reason: Mapped[str | None] = mapped_column(String(40))
    followup52_not_done_reason: Mapped[str | None] = mapped_column(String(40))

    # Added with issue 19: the type of fracture, NOGG's fracture risk, the falls-risk items and
    # the new fractures at 12 months (kpis.dataset.ADDED_FIELDS).
    fracture_type: Mapped[str | None] = mapped_column(String(40))
    frax_hip_percent: Mapped[float | None] = mapped_column(Numeric(4, 1, asdecimal=False))
    frax_with_bmd: Mapped[str | None] = mapped_column(String(20))
    nogg_risk_category: Mapped[str | None] = mapped_column(String(20))
    falls_two_or_more: Mapped[str | None] = mapped_column(String(20))
    fear_of_falling: Mapped[str | None] = mapped_column(String(20))
    falls_risk_medicines: Mapped[str | None] = mapped_column(String(20))
    mobility_before_fracture: Mapped[str | None] = mapped_column(String(60))
    visual_impairment: Mapped[str | None] = mapped_column(String(20))
    toileting_problems: Mapped[str | None] = mapped_column(String(20))
    cardiovascular_abnormal: Mapped[str | None] = mapped_column(String(20))
    cognitive_impairment: Mapped[str | None] = mapped_column(String(20))
    refracture_count: Mapped[float | None] = mapped_column(Numeric(2, 0, asdecimal=False))
    refracture1_site: Mapped[str | None] = mapped_column(String(20))
    refracture1_date: Mapped[date | None] = mapped_column(Date)
    refracture2_site: Mapped[str | None] = mapped_column(String(20))
    refracture2_date: Mapped[date | None] = mapped_column(Date)
    refracture3_site: Mapped[str | None] = mapped_column(String(20))
    refracture3_date: Mapped[date | None] = mapped_column(Date)
    # Complete for the audit (a lead): locked against casual edits until a lead reopens it.
    audit_complete_at: Mapped[datetime | None] = mapped_column(DateTime)
    audit_complete_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    # Record keeping
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=clock.utcnow, onupdate=clock.utcnow
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deleted_reason: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="episodes")
    service = relationship("Service")
    previous_episode = relationship("Episode", remote_side=[id])

    __mapper_args__ = {"version_id_col": version}
