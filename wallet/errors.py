"""The wallet role's errors: one tree, a stable snake_case ``code`` per failure, the HTTP status it maps to.

``wallet.store`` raises the storage ones (``not_found``, ``conflict``, ``invalid_value``, ``locked``),
``wallet.service`` the others; ``wallet.api`` turns any of them into ``{"error": code,
"error_description": detail}`` with :attr:`WalletError.http_status` and :meth:`WalletError.headers`
(``WWW-Authenticate`` on every 401, RFC 6750 s3; ``Retry-After`` on a lockout, RFC 9110 s10.2.3).
No framework is imported here, so the service stays pure.

::

    WalletError                      wallet_error                    500
    ├── InvalidRequest               invalid_request                 400
    │   ├── InvalidValue             invalid_value                   400  a value the store cannot hold
    │   ├── InvalidPhone             invalid_phone                   400  not a mainland mobile number
    │   ├── WeakPassword             weak_password                   400  shorter than the policy's minimum
    │   ├── PinFormatInvalid         pin_format_invalid              400  not 6 ASCII digits
    │   ├── PinTooSimple             pin_too_simple                  400  one digit repeated, or a run
    │   └── InvalidUscc              uscc_invalid                    400  fails GB 32100-2015
    ├── AuthenticationFailed         authentication_failed           401  (+ WWW-Authenticate)
    │   ├── TokenRequired            token_required                  401  no bearer token
    │   ├── InvalidToken             invalid_token                   401  unknown or revoked access token
    │   ├── TokenExpired             token_expired                   401  access token past its lifetime
    │   ├── InvalidCredentials       invalid_credentials             401  phone or password wrong
    │   └── InvalidRefreshToken      invalid_refresh_token           401  unknown, expired, revoked or reused
    ├── Locked                       locked                          429  (+ Retry-After, ``retry_after``)
    │   ├── AccountLocked            account_locked                  429  too many failed sign-ins
    │   └── PinLocked                pin_locked                      429  too many wrong PINs
    ├── Forbidden                    forbidden                       403
    │   ├── PinInvalid               pin_invalid                     403  the PIN is wrong
    │   ├── PinConfirmationRequired  pin_confirmation_required       403  no fresh PIN confirmation
    │   ├── LegalRepresentativeRequired  legal_representative_required  403
    │   ├── AdministratorRequired    administrator_required          403  legal representative or administrator
    │   └── AuthorisationRequired    authorisation_required          403  staff without a valid 授权
    ├── NotFound                     not_found                       404  (also: another enterprise's id)
    │   └── AccountNotFound          account_not_found               404  no account with that phone
    └── Conflict                     conflict                        409
        ├── PhoneTaken               phone_taken                     409
        ├── PinNotSet                pin_not_set                     409
        ├── PinAlreadySet            pin_already_set                 409  change it with the old PIN
        ├── EnterpriseClaimed        enterprise_claimed              409  another user holds this USCC
        ├── AlreadyMember            member_exists                   409
        ├── AdministratorLimit       administrator_limit             409  at most 5 administrators
        ├── LegalRepresentativeFixed legal_representative_fixed      409  the 法定代表人 cannot be removed or demoted
        ├── CredentialExists         credential_exists               409  the same credential is stored
        └── WrongEnterprise          credential_not_for_enterprise   409  it names another USCC: not kept
    PeerError                        peer_error                      502  an issuer or verifier
    ├── PeerUnreachable              peer_unreachable                502  no answer, timeout, HTTP 5xx
    └── PeerResponseInvalid          peer_response_invalid           502  garbage, redirect, refusal
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "WalletError",
    "InvalidRequest",
    "InvalidValue",
    "InvalidPhone",
    "WeakPassword",
    "PinFormatInvalid",
    "PinTooSimple",
    "InvalidUscc",
    "AuthenticationFailed",
    "TokenRequired",
    "InvalidToken",
    "TokenExpired",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "Locked",
    "AccountLocked",
    "PinLocked",
    "Forbidden",
    "PinInvalid",
    "PinConfirmationRequired",
    "LegalRepresentativeRequired",
    "AdministratorRequired",
    "AuthorisationRequired",
    "NotFound",
    "AccountNotFound",
    "Conflict",
    "PhoneTaken",
    "PinNotSet",
    "PinAlreadySet",
    "EnterpriseClaimed",
    "AlreadyMember",
    "AdministratorLimit",
    "LegalRepresentativeFixed",
    "CredentialExists",
    "WrongEnterprise",
    "PeerError",
    "PeerUnreachable",
    "PeerResponseInvalid",
    "REALM",
]

#: The ``realm`` of the wallet's ``WWW-Authenticate: Bearer`` challenges.
REALM = "elicence-wallet"


class WalletError(Exception):
    """Root of the tree: ``code`` is part of the API contract, ``detail`` says what exactly was wrong."""

    code: ClassVar[str] = "wallet_error"
    description: ClassVar[str] = "The wallet could not complete the request."
    http_status: ClassVar[int] = 500

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.description
        super().__init__(self.detail)

    def to_dict(self) -> dict[str, str]:
        """The OAuth-style error body."""
        return {"error": self.code, "error_description": self.detail}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with this error (none by default)."""
        return {}


class InvalidRequest(WalletError):
    code = "invalid_request"
    description = "The request is malformed."
    http_status = 400


class InvalidValue(InvalidRequest):
    code = "invalid_value"
    description = "A value cannot be stored."


class InvalidPhone(InvalidRequest):
    code = "invalid_phone"
    description = "Not a mainland China mobile number (11 digits starting with 1, optionally +86)."


class WeakPassword(InvalidRequest):
    code = "weak_password"
    description = "The password is too short."


class PinFormatInvalid(InvalidRequest):
    code = "pin_format_invalid"
    description = "The wallet PIN must be exactly 6 digits."


class PinTooSimple(InvalidRequest):
    code = "pin_too_simple"
    description = "The wallet PIN must not be one digit repeated or a run of consecutive digits."


class InvalidUscc(InvalidRequest):
    code = "uscc_invalid"
    description = "Not a valid unified social credit code (GB 32100-2015)."


class AuthenticationFailed(WalletError):
    """401: the caller is not (or no longer) signed in. Carries a ``WWW-Authenticate`` challenge."""

    code = "authentication_failed"
    description = "Authentication failed."
    http_status = 401
    #: The RFC 6750 s3.1 ``error`` attribute of the challenge; ``None`` when no token was sent (s3.1).
    bearer_error: ClassVar[str | None] = "invalid_token"

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="{REALM}"'
        if self.bearer_error is not None:
            challenge += f', error="{self.bearer_error}"'
        return {"WWW-Authenticate": challenge}


class TokenRequired(AuthenticationFailed):
    code = "token_required"
    description = "An access token is required (Authorization: Bearer <token>)."
    bearer_error = None


class InvalidToken(AuthenticationFailed):
    code = "invalid_token"
    description = "The access token is unknown or revoked."


class TokenExpired(AuthenticationFailed):
    code = "token_expired"
    description = "The access token has expired; use the refresh token."


class InvalidCredentials(AuthenticationFailed):
    code = "invalid_credentials"
    description = "The phone number or the password is wrong."
    bearer_error = None


class InvalidRefreshToken(AuthenticationFailed):
    code = "invalid_refresh_token"
    description = "The refresh token is unknown, expired, revoked or was already used; sign in again."


class Locked(WalletError):
    """429: too many failures; ``retry_after`` is how many seconds until the next attempt may be made."""

    code = "locked"
    description = "Too many failed attempts; try again later."
    http_status = 429

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AccountLocked(Locked):
    code = "account_locked"
    description = "Too many failed sign-ins: the account is locked for a while."


class PinLocked(Locked):
    code = "pin_locked"
    description = "Too many wrong PINs: the wallet PIN is locked for a while."


class Forbidden(WalletError):
    code = "forbidden"
    description = "This user may not do this."
    http_status = 403


class PinInvalid(Forbidden):
    code = "pin_invalid"
    description = "The wallet PIN is wrong."


class PinConfirmationRequired(Forbidden):
    code = "pin_confirmation_required"
    description = "This needs a fresh confirmation with the wallet PIN."


class LegalRepresentativeRequired(Forbidden):
    code = "legal_representative_required"
    description = "Only the enterprise's legal representative may do this."


class AdministratorRequired(Forbidden):
    code = "administrator_required"
    description = "Only the legal representative or a licence administrator may do this."


class AuthorisationRequired(Forbidden):
    code = "authorisation_required"
    description = "A staff member needs a valid authorisation of the enterprise to use its licence."


class NotFound(WalletError):
    code = "not_found"
    description = "No such object."
    http_status = 404


class AccountNotFound(NotFound):
    code = "account_not_found"
    description = "No wallet account has this phone number."


class Conflict(WalletError):
    code = "conflict"
    description = "The object already exists or is in another state."
    http_status = 409


class PhoneTaken(Conflict):
    code = "phone_taken"
    description = "An account with this phone number exists."


class PinNotSet(Conflict):
    code = "pin_not_set"
    description = "Set a wallet PIN first."


class PinAlreadySet(Conflict):
    code = "pin_already_set"
    description = "The wallet PIN is set; give the old PIN to change it."


class EnterpriseClaimed(Conflict):
    code = "enterprise_claimed"
    description = "This enterprise is already in another user's wallet."


class AlreadyMember(Conflict):
    code = "member_exists"
    description = "This user is already a member of the enterprise in that role."


class AdministratorLimit(Conflict):
    code = "administrator_limit"
    description = "The enterprise has the most licence administrators allowed."


class LegalRepresentativeFixed(Conflict):
    code = "legal_representative_fixed"
    description = "The legal representative cannot be removed or given another role."


class CredentialExists(Conflict):
    code = "credential_exists"
    description = "This credential is already stored in the wallet."


class WrongEnterprise(Conflict):
    code = "credential_not_for_enterprise"
    description = "The credential names another enterprise; it was not kept."


class PeerError(WalletError):
    code = "peer_error"
    description = "An issuer or verifier did not answer as the protocol requires."
    http_status = 502


class PeerUnreachable(PeerError):
    code = "peer_unreachable"
    description = "The issuer or verifier could not be reached."


class PeerResponseInvalid(PeerError):
    code = "peer_response_invalid"
    description = "The issuer or verifier answered with something the protocol does not allow."
