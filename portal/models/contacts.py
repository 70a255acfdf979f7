from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.models.base import Base, one_of

# What an attempt to reach the patient was for, how it was made and how it went.
CONTACT_PURPOSES = ("followup16", "followup52", "assessment", "other")
CONTACT_METHODS = ("Telephone", "Letter", "Clinic", "Other")
CONTACT_OUTCOMES = ("Reached", "No answer", "Wrong number", "Declined")
# Why a follow-up was not done (the form asks once its window has closed, or after the
# service's number of unanswered attempts: "Lost to follow-up").
LOST_TO_FOLLOW_UP = "Lost to follow-up"
NOT_DONE_REASONS = (
    LOST_TO_FOLLOW_UP,
    "Patient declined",
    "Moved out of the area",
    "Too unwell",
    "Other",
)


class ContactAttempt(Base):
    """One attempt to reach a patient about an episode: a call, a letter, a clinic, other."""

    __tablename__ = "contact_attempts"
    __table_args__ = (
        one_of("purpose", CONTACT_PURPOSES),
        one_of("method", CONTACT_METHODS),
        one_of("outcome", CONTACT_OUTCOMES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    made_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)

    created_by = relationship("User")


# Letters: to the patient's GP, or to the patient.
LETTER_KINDS = ("gp", "patient")
LETTER_STATES = ("draft", "final")


class Letter(Base):
    """A letter about an episode. A draft can be edited; a final letter is kept unchanged."""

    __tablename__ = "letters"
    __table_args__ = (one_of("kind", LETTER_KINDS), one_of("state", LETTER_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), default="draft", server_default="draft")
    # To whom it goes, as written on it (the GP practice, or the patient's name).
    recipient: Mapped[str] = mapped_column(Text)
    # The service's letterhead, address and telephone, and the signature block, as written on
    # the letter (filled in from the service's settings; kept as they were once final).
    heading: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=clock.utcnow, onupdate=clock.utcnow
    )
    finalised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    finalised_at: Mapped[datetime | None] = mapped_column(DateTime)

    created_by = relationship("User", foreign_keys=[created_by_id])
    finalised_by = relationship("User", foreign_keys=[finalised_by_id])

    __mapper_args__ = {"version_id_col": version}
