"""Compliance data: KYC, responsible gambling, payment-time decisions, AML monitoring and
cases, sanctions screening, risk scores and the audit trail of every compliance action.

Rows here are written only by `compliance.services`; the admin and the API call services.
"""

from .audit import AuditEvent
from .cases import Case, CaseNote, DocumentRequest, SuspiciousActivityReport, WithdrawalBlock
from .gambling import DepositLimit, PaymentDecision, SelfExclusion
from .kyc import KycDocument, KycLevel, KycLevelChange, KycProfile, VerificationRequest
from .monitoring import Alert, AmlRule, InstrumentUse, MonitoringCursor, RiskAssessment
from .screening import SanctionsEntity, SanctionsImport, SanctionsName

__all__ = [
    "Alert",
    "AmlRule",
    "AuditEvent",
    "Case",
    "CaseNote",
    "DepositLimit",
    "DocumentRequest",
    "InstrumentUse",
    "KycDocument",
    "KycLevel",
    "KycLevelChange",
    "KycProfile",
    "MonitoringCursor",
    "PaymentDecision",
    "RiskAssessment",
    "SanctionsEntity",
    "SanctionsImport",
    "SanctionsName",
    "SelfExclusion",
    "SuspiciousActivityReport",
    "VerificationRequest",
    "WithdrawalBlock",
]
