"""Who may do what (dataset.md, roles; security.md): one module, used by routes, templates and the
command line. Membership of a service is what grants access to its patients; a role says what a
member may do with them; an inactive service keeps its records readable but not changeable.

Routes ask `security.require(action, service)`, templates `may(action, service)`, and the
command line, which acts as the server's operator, asks nothing of a role.
"""

from __future__ import annotations

from typing import Any, Protocol

CLINICIAN, LEAD, ADMIN = "clinician", "lead", "admin"
ROLES = (CLINICIAN, LEAD, ADMIN)
EDITORS = (CLINICIAN, LEAD)

# Each action and the roles that may take it.
ACTIONS: dict[str, tuple[str, ...]] = {
    # Enter and correct patients and episodes, import records (a service's own).
    "change_records": EDITORS,
    "import_records": EDITORS,
    # Patient-level exports and deleting an episode (with a reason).
    "export_patient_data": (LEAD,),
    "delete_episode": (LEAD,),
    # Mark an episode complete for the audit (locked against casual edits), and reopen it with
    # a reason; write the service's file in FLS-DB's own format.
    "complete_for_audit": (LEAD,),
    "reopen_for_audit": (LEAD,),
    # Deleted episodes: listed and restored by admins.
    "see_deleted_episodes": (ADMIN,),
    "restore_episode": (ADMIN,),
    "read_audit_trail": (ADMIN, LEAD),
    "manage_accounts": (ADMIN,),
    "manage_services": (ADMIN,),
    # KPI figures (never patient data) of every service, not only one's own.
    "see_every_service_figures": (ADMIN,),
    # Each service's hip fractures a year (NHFD), for the missed-patients estimate.
    "record_hip_fractures": (ADMIN,),
    # The nurse's day (issue 18): letters to the GP and the patient; the service's letterhead
    # and the unanswered attempts before a patient is lost to follow-up.
    "write_letters": EDITORS,
    "change_service_settings": (LEAD,),
}
# Actions that change a service's records: refused while the service is inactive.
CHANGES_RECORDS = frozenset(
    {
        "change_records",
        "import_records",
        "delete_episode",
        "restore_episode",
        "complete_for_audit",
        "reopen_for_audit",
        "write_letters",
        "change_service_settings",
    }
)

INACTIVE_SERVICE = "This service is inactive: its records can be read but not changed."


class Member(Protocol):
    role: str

    @property
    def service_ids(self) -> set[int]: ...


def refusal(user: Member, action: str, service: Any = None) -> str | None:
    """Why `user` may not take `action` (on `service`'s records), or None when they may."""
    allowed = ACTIONS[action]
    if user.role not in allowed:
        return f"role {user.role} may not {action.replace('_', ' ')}"
    if service is not None:
        if service.id not in user.service_ids:
            return "record of a service the user does not belong to"
        if action in CHANGES_RECORDS and not service.active:
            return INACTIVE_SERVICE
    return None


def may(user: Member, action: str, service: Any = None) -> bool:
    """Whether `user` may take `action` (on `service`'s records)."""
    return refusal(user, action, service) is None
