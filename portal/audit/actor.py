"""Who makes a change. Every function that changes stored data takes an Actor, and the audit
trail records it with the change in the same transaction (security.md, "Audit trail").

An actor is a signed-in user (with the address the request came from and the service they work
in), someone signing in (an address and, where known, the account tried), or the operator at the
command line. Routes and commands make the actor; the logic below them never reads the request.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    address: str | None = None
    service_id: int | None = None
    role: str | None = None
    # Set for changes made at the command line: who ran it there.
    operator: str | None = None

    @classmethod
    def for_user(cls, user: Any, address: str | None, service_id: int | None = None) -> Actor:
        """A signed-in user, from where they are and the service they work in."""
        return cls(user_id=user.id, address=address, service_id=service_id, role=user.role)

    @classmethod
    def visitor(cls, address: str | None) -> Actor:
        """Someone not signed in (a failed sign-in with an unknown email)."""
        return cls(user_id=None, address=address)

    @classmethod
    def command_line(cls) -> Actor:
        """The operator running a `flask` command on the server."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(user_id=None, operator=f"command line ({who})")

    def as_account(self, user: Any) -> Actor:
        """The same person acting as `user`: someone signing in, from this address."""
        return Actor(
            user_id=user.id,
            address=self.address,
            service_id=self.service_id,
            role=user.role,
            operator=self.operator,
        )

    @property
    def at_command_line(self) -> bool:
        return self.operator is not None
