from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from kpis.dataset import NATIONS
from portal.models.base import Base, one_of


class Service(Base):
    """An FLS unit. Its expected caseload is the denominator of KPI 2."""

    __tablename__ = "services"
    __table_args__ = (
        one_of("nation", NATIONS),
        CheckConstraint("expected_caseload > 0", name="expected_caseload_positive"),
        CheckConstraint("code <> 'ALL'", name="code_not_all"),
        CheckConstraint(
            "attempts_before_lost BETWEEN 1 AND 10", name="attempts_before_lost_1_to_10"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(3), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    nation: Mapped[str] = mapped_column(String(20))
    expected_caseload: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Advanced by every save, import and delete in the service: keys the KPI cache.
    data_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The nurse's day (migration 0008). Unanswered contact attempts after which a follow-up may
    # be recorded as not done, "Lost to follow-up".
    attempts_before_lost: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # The letters' letterhead, address, telephone and signature block: plain text with named
    # placeholders ({service_name}), set by a lead; empty means the portal's default.
    letter_heading: Mapped[str | None] = mapped_column(Text)
    letter_address: Mapped[str | None] = mapped_column(Text)
    letter_telephone: Mapped[str | None] = mapped_column(String(100))
    letter_signature: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<Service {self.code}>"
