"""Typed SQLAlchemy 2 models of the FLS dataset, accounts and the audit trail."""

from portal.models.accounts import (
    RecoveryCode,
    SignInThrottle,
    User,
    UserSession,
    user_services,
)
from portal.models.audit import AuditEvent
from portal.models.base import Base
from portal.models.clinical import Episode, Patient
from portal.models.contacts import ContactAttempt, Letter
from portal.models.hip_fractures import HipFractureCount
from portal.models.imports import ImportJob, ImportUploadChunk
from portal.models.service import Service
from portal.models.submissions import Submission
from portal.models.treatment import TreatmentCourse, TreatmentEvent
from portal.models.waiting import WORKLIST_INDEXES

__all__ = [
    "AuditEvent",
    "Base",
    "ContactAttempt",
    "Episode",
    "HipFractureCount",
    "ImportJob",
    "ImportUploadChunk",
    "Letter",
    "Patient",
    "RecoveryCode",
    "Service",
    "SignInThrottle",
    "Submission",
    "TreatmentCourse",
    "TreatmentEvent",
    "User",
    "UserSession",
    "WORKLIST_INDEXES",
    "user_services",
]
