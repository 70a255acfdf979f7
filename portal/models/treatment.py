"""A treatment plan: the bone-protection courses started for an episode and what was recorded of
each (doses, reviews), from which journey/treatment.py derives what is due."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kpis import dataset as ds
from portal import clock
from portal.models.base import Base, one_of

ROUTES = ("Oral", "Subcutaneous", "Intravenous", "Transdermal")
STOP_REASONS = (
    "Course completed",
    "Treatment holiday",
    "Side effects",
    "Patient choice",
    "Clinical decision",
    "Switched to another drug",
    "Other",
)
EVENT_KINDS = ("dose", "review")


class TreatmentCourse(Base):
    """One drug taken from a start date until stopped; a switch stops it and starts its follow-on."""

    __tablename__ = "treatment_courses"
    __table_args__ = (
        one_of("drug", ds.DRUGS),
        one_of("route", ROUTES),
        one_of("stop_reason", STOP_REASONS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    drug: Mapped[str] = mapped_column(String(40))
    route: Mapped[str] = mapped_column(String(20))
    started_on: Mapped[date] = mapped_column(Date)
    stopped_on: Mapped[date | None] = mapped_column(Date)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    # The course that followed this one when it was switched (stopped with a follow-on drug).
    follow_on_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_courses.id"))
    # Denosumab stopped without a follow-on drug: the clinician confirmed it (it stays on the
    # treatment-due list until a follow-on course is recorded all the same).
    no_follow_on_confirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    episode = relationship("Episode")
    events: Mapped[list[TreatmentEvent]] = relationship(
        back_populates="course", order_by="(TreatmentEvent.event_date, TreatmentEvent.id)"
    )
    follow_on = relationship("TreatmentCourse", remote_side=[id])

    __mapper_args__ = {"version_id_col": version}


class TreatmentEvent(Base):
    """A dose given or a review done on a course, with its date."""

    __tablename__ = "treatment_events"
    __table_args__ = (one_of("kind", EVENT_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("treatment_courses.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    event_date: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    course: Mapped[TreatmentCourse] = relationship(back_populates="events")
