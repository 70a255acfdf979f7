from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.models.base import Base


class HipFractureCount(Base):
    """A service's hip fractures in one calendar year, from the hip fracture audit (NHFD),
    recorded by an admin: what FLS-DB's missed-patients estimate starts from (kpis/missed.py)."""

    __tablename__ = "hip_fracture_counts"
    __table_args__ = (
        UniqueConstraint("service_id", "year"),
        CheckConstraint("hip_fractures >= 0", name="hip_fractures_not_negative"),
        CheckConstraint("year >= 2016", name="year_from_2016"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    hip_fractures: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=clock.utcnow, onupdate=clock.utcnow
    )
