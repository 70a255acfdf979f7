from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kpis.dataset import ROLES
from portal import clock
from portal.models.base import Base, one_of
from portal.models.service import Service

user_services = Table(
    "user_services",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # None until the user sets a password through their one-time link.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Every session carries this number; raising it ends all of the user's sessions.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # One-time password-setting link: only its hash is stored.
    setup_token_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    setup_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)

    services: Mapped[list[Service]] = relationship(
        secondary=user_services, order_by=Service.code, lazy="selectin"
    )

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        # The session carries the session version: raising it ends every older session.
        return f"{self.id}:{self.session_version}"

    @property
    def service_ids(self) -> set[int]:
        return {s.id for s in self.services}

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class RecoveryCode(Base):
    """A one-time second-factor recovery code: only its salted Argon2id hash is stored (rows made
    before revision 0006 hold a plain SHA-256 until used or replaced); `used_at` spends it."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class UserSession(Base):
    """One signed-in browser (security.md, "Where you are signed in"): the cookie carries a random
    token whose hash is kept here, and every request checks the record, so a session ended here
    is refused at once by every worker and instance."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    # Written at most every SESSION_TOUCH_SECONDS, not at every request.
    last_used_at: Mapped[datetime] = mapped_column(DateTime)
    address: Mapped[str | None] = mapped_column(String(64))
    browser: Mapped[str | None] = mapped_column(String(255))
    # When the user last proved it is them (password, and second factor where enrolled).
    reauthenticated_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class SignInThrottle(Base):
    """Failed sign-ins of one email address from one network address (security.md): the slow-down
    falls on that pair only, so nobody can lock an account out from an address they do not hold,
    and an email with no account is slowed down the same way as one with an account."""

    __tablename__ = "sign_in_throttles"
    __table_args__ = (UniqueConstraint("email", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime] = mapped_column(DateTime)
