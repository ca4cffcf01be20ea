"""Second factor: TOTP (RFC 6238) with QR enrolment, backup codes, replay and guessing limits."""

from authserver.mfa.service import (
    ACR_MFA,
    ACR_PASSWORD,
    AMR_AFTER_TOTP,
    MFA_ACR_VALUES,
    Context,
    MfaService,
    is_enrolled,
)

__all__ = ["ACR_MFA", "ACR_PASSWORD", "AMR_AFTER_TOTP", "MFA_ACR_VALUES", "Context", "MfaService", "is_enrolled"]
