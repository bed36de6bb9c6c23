"""The verifier role. ``verifier.sdk`` is the SDK a department installs (no FastAPI, no database);
``verifier.checks`` names the verification checks and their order."""

from verifier.checks import CHECKS, CheckInfo, ReplayStore
from verifier.sdk import (
    CheckResult,
    MemoryReplayStore,
    Policy,
    StatusSource,
    TrustListSource,
    VerificationResult,
    Verifier,
    decode_input,
    failure_report,
    http_fetch,
)

__all__ = [
    "CHECKS",
    "CheckInfo",
    "CheckResult",
    "MemoryReplayStore",
    "Policy",
    "ReplayStore",
    "StatusSource",
    "TrustListSource",
    "VerificationResult",
    "Verifier",
    "decode_input",
    "failure_report",
    "http_fetch",
]
