"""The wallet's protocol flows, over HTTP with the standard protocols (built on :mod:`wallet.service`).

* **Receive** (OpenID4VCI 1.0, :mod:`wallet.oid4vci_client`): an offer (deep link or QR image) and the
  authority's PIN; the credential is bound to the enterprise's licence key (``enterprise_id`` given: the
  legal representative or an administrator receives the enterprise's licence or permit) or to the user's
  own key (their identity, a staff authorisation). A credential about an enterprise must name that
  enterprise's USCC, or it is not kept.
* **Show as a QR code** (亮码): a fresh key-bound presentation of the chosen claims (the type's
  ``qr_claims`` by default) in the compact ``EL1:`` payload (:func:`credentials.qr.present_offline`),
  as text, PNG and SVG, after the wallet PIN; valid for the verifiers' freshness window.
* **Answer a presentation request** (OpenID4VP 1.0, cross-device, ``x509_san_dns``): :meth:`inspect`
  fetches and checks the signed request object (registrar roots) and matches its DCQL query against what
  the user may present; :meth:`respond` re-checks it, and with consent and the PIN posts the ``vp_token``
  (``direct_post``), or posts ``access_denied``. "Log in with e-licence" is this flow.
* **Authorise staff** (授权) and **withdraw**: the legal representative or an administrator presents the
  enterprise's licence to its issuer (key-bound, ``aud`` the issuer, the issuer's ``c_nonce``) with the
  staff member's public key; the authorisation credential is then received for the staff member's key.
* **Status**: the credential's status list token is fetched and verified with the issuer's key from the
  trust list, and the result kept with the credential.

Every presentation made (QR, request answered or refused) is appended to the usage record (用照记录).
HTTP is a port (:class:`Network`): tests route it to the apps in process; the deployment uses
:func:`wallet.oid4vci_client.http_client`. Redirects are never followed and bodies are bounded.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from credentials import dcql, jws, qr, sd_jwt, status_list
from credentials import openid4vp as vp
from credentials.errors import CredentialError
from credentials.sd_jwt import SdJwt, process_disclosures
from credentials.sd_jwt_vc import check_url
from credentials.trust import TrustList
from schemas.registry import get_type
from wallet import oid4vci_client
from wallet.errors import InvalidValue, NotFound, PeerResponseInvalid, PeerUnreachable, WrongEnterprise
from wallet.service import STAFF_AUTHORISATION_VCT, WalletService
from wallet.store import Channel, CredentialStatus, Outcome, StoredCredential, User

__all__ = ["Network", "WalletFlows", "ShownCode", "RequestPreview", "Offered", "Answered", "Card", "CardField",
           "MAX_PEER_BYTES"]

#: Largest answer read from an issuer or verifier (request objects, status list tokens, JSON).
MAX_PEER_BYTES = 1024 * 1024
#: A card older than this (seconds since its status was last read) checks the status list again.
STATUS_RECHECK = 300
BUSINESS_LICENCE_VCT = get_type("business-licence").vct
_ENTERPRISE_CLAIM = {"business-licence": "uscc", "food-business-permit": "uscc", "staff-authorisation": "enterprise_uscc"}
_STATUS_NAMES = {status_list.VALID: CredentialStatus.VALID, status_list.INVALID: CredentialStatus.INVALID,
                 status_list.SUSPENDED: CredentialStatus.SUSPENDED}


@dataclass(frozen=True)
class Network:
    """The wallet's view of the outside: an HTTP client, the issuers' trust list, the verifiers' registrars."""

    http: Callable[[], httpx.Client]
    trust: Callable[[], TrustList]
    verifier_roots: Callable[[], Sequence[Any]]
    allow_http: bool = False


@dataclass(frozen=True, slots=True)
class ShownCode:
    """A QR code to show: the ``EL1:`` text, its images, what it discloses and until when it is good."""

    credential_id: str
    text: str = field(repr=False)
    png: bytes = field(repr=False)
    svg: str | None = field(repr=False)
    disclosed: tuple[str, ...]
    expires_at: datetime
    usage_id: str


@dataclass(frozen=True, slots=True)
class Offered:
    """One credential the user could present for a Credential Query, and what would be disclosed."""

    credential_id: str
    vct: str
    disclose: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequestPreview:
    """For the consent screen: who asks, why, for what, and which credentials would answer."""

    request_object: str = field(repr=False)
    client_id: str
    verifier_name: str | None
    client_name: str | None
    purpose: str | None
    requested: Mapping[str, tuple[str, ...]]
    offered: Mapping[str, tuple[Offered, ...]]
    satisfiable: bool
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class Answered:
    """What became of an answer: ``sent`` (and the verifier's ``redirect_uri``, if any), ``refused``."""

    outcome: str
    usage_id: str
    redirect_uri: str | None = None


@dataclass(frozen=True, slots=True)
class CardField:
    """One claim on a card: its dotted path, its labels and its value."""

    path: str
    label_zh: str
    label_en: str
    value: Any


@dataclass(frozen=True, slots=True)
class Card:
    """What the app draws for a credential (SD-JWT VC type metadata: display and claim labels)."""

    credential: StoredCredential
    type_zh: str
    type_en: str
    issuer_name: Mapping[str, str]
    fields: tuple[CardField, ...]
    colours: Mapping[str, str]
    qr_claims: tuple[str, ...]


def _leaves(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    """Claims to show, depth first: objects are opened, arrays and scalars are values."""
    if isinstance(value, dict):
        out = []
        for key, member in value.items():
            if key in _REGISTERED:
                continue
            out += _leaves(member, path + (key,))
        return out
    return [(path, value)]


_REGISTERED = frozenset({"iss", "vct", "iat", "nbf", "exp", "cnf", "status", "sub", "_sd", "_sd_alg", "vct#integrity"})


@dataclass(frozen=True, slots=True)
class _Answer:
    """An issuer's or verifier's answer, read whole (bounded)."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as strict JSON; raises ``ValueError``."""
        try:
            return jws.loads(self.content)
        except CredentialError as exc:
            raise ValueError(exc.detail) from exc


def _path_text(path: Sequence[Any]) -> str:
    return ".".join("*" if p is None else str(p) for p in path)


def _claims_of(text: str) -> dict[str, Any]:
    """Every claim of a stored (already verified) SD-JWT VC, all Disclosures applied."""
    sd = SdJwt.parse(text)
    return process_disclosures(jws.parse(sd.issuer_jwt).payload, sd.disclosures).claims


class WalletFlows:
    """The protocol flows of the wallet for one deployment (thread-safe; state lives in the database)."""

    def __init__(self, service: WalletService, network: Network, *, clock: Callable[[], float] = time.time,
                 nonce: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self.service = service
        self.network = network
        self._clock = clock
        self._nonce = nonce

    def _now(self) -> int:
        return int(self._clock())

    # -- HTTP ------------------------------------------------------------------------------------------

    def _call(self, method: str, url: str, *, what: str, **kwargs: Any) -> _Answer:
        """One bounded request, no redirects; raises ``PeerUnreachable`` / ``PeerResponseInvalid``."""
        try:
            check_url(url, what=what)
            if url.startswith("http://") and not self.network.allow_http:
                raise CredentialError(f"{what} is not https")
        except CredentialError as exc:
            raise PeerResponseInvalid(f"{what}: {exc.detail}") from exc
        try:
            with self.network.http() as client, client.stream(method, url, follow_redirects=False, **kwargs) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PEER_BYTES:
                        raise PeerResponseInvalid(f"{what}: the answer is larger than {MAX_PEER_BYTES} bytes")
        except httpx.TimeoutException as exc:
            raise PeerUnreachable(f"{what}: no answer in time") from exc
        except httpx.HTTPError as exc:
            raise PeerUnreachable(f"{what}: cannot reach {urlsplit(url).netloc} ({type(exc).__name__})") from exc
        if 300 <= r.status_code < 400:
            raise PeerResponseInvalid(f"{what}: HTTP {r.status_code} (redirects are not followed)")
        if r.status_code >= 500:
            raise PeerUnreachable(f"{what}: HTTP {r.status_code}")
        return _Answer(r.status_code, bytes(body))

    # -- receive ---------------------------------------------------------------------------------------

    def receive(self, user: User, *, offer: str | bytes, tx_code: str | None, enterprise_id: str | None = None
                ) -> StoredCredential:
        """Run OpenID4VCI for ``offer`` and keep the verified credential (see the module docstring).

        Raises the ``wallet.oid4vci_client`` codes, ``WrongEnterprise``, and those of
        :meth:`WalletService.signer_for` / :meth:`WalletService.store_credential`.
        """
        signer = self.service.signer_for(user, purpose="key_proof", enterprise_id=enterprise_id)
        with self.network.http() as client:
            received = oid4vci_client.receive(offer, tx_code=tx_code, holder=signer, http=client,
                                              trust=self.network.trust(), now=self._now(),
                                              allow_http=self.network.allow_http)
        if enterprise_id is not None:
            self._check_enterprise(user, enterprise_id, received)
        status = received.status
        return self.service.store_credential(
            user, credential=received.credential, vct=received.vct, issuer=received.issuer,
            configuration_id=received.configuration_id, holder_kid=signer.kid, enterprise_id=enterprise_id,
            expires_at=received.expires_at, status_list_uri=status.uri if status else None,
            status_list_idx=status.idx if status else None,
        )

    def _check_enterprise(self, user: User, enterprise_id: str, received: oid4vci_client.Received) -> None:
        enterprise = self.service.enterprise(user, enterprise_id=enterprise_id)
        claim = _ENTERPRISE_CLAIM.get(get_type(received.vct).slug)
        if claim is None or received.claims.get(claim) != enterprise.uscc:
            raise WrongEnterprise(f"the credential names {received.claims.get(claim or 'uscc')!r}, "
                                  f"not this enterprise's USCC {enterprise.uscc}; it was not kept")

    # -- show as a QR code -------------------------------------------------------------------------------

    def _presenter(self, user: User, credential: StoredCredential, confirmation: Any) -> Any:
        enterprise = credential.enterprise_id if credential.user_id is None else None
        return self.service.signer_for(user, purpose="presentation", enterprise_id=enterprise, confirmation=confirmation)

    def show_qr(self, user: User, *, credential_id: str, pin: str, claims: Sequence[str] | None = None,
                svg: bool = False) -> ShownCode:
        """A new QR code of the credential (the type's default claims unless ``claims``), after the PIN;
        as text and PNG, and as SVG too when ``svg``.

        Raises ``NotFound``, the PIN codes, ``AuthorisationRequired`` (staff without 授权), ``InvalidValue``
        (a claim the credential does not have).
        """
        stored = self.service.credential(user, credential_id=credential_id)
        ctype = get_type(stored.vct)
        chosen = [tuple(p) for p in ctype.default_qr_claims] if claims is None else [tuple(c.split(".")) for c in claims]
        confirmation = self.service.confirm_pin(user, pin)
        signer = self._presenter(user, stored, confirmation)
        now = self._now()
        try:
            text = qr.present_offline(stored.credential, disclose=chosen, holder_signer=signer, now=now,
                                      nonce=self._nonce())
        except CredentialError as exc:
            raise InvalidValue(f"cannot show these claims: {exc.detail}") from exc
        disclosed = tuple(_path_text(p) for p in chosen)
        record = self.service.record_use(user, channel=Channel.QR, outcome=Outcome.SHOWN, credential_ids=[stored.id],
                                         enterprise_id=stored.enterprise_id, disclosed=disclosed)
        return ShownCode(stored.id, text, qr.render_png(text), qr.render_svg(text) if svg else None, disclosed,
                         datetime.fromtimestamp(now + qr.OFFLINE_FRESHNESS, timezone.utc), record.id)

    # -- presentation requests (OpenID4VP) ---------------------------------------------------------------

    def _request(self, link: str | bytes) -> tuple[str, vp.AuthorizationRequest]:
        text = qr.decode_image(link) if isinstance(link, (bytes, bytearray)) else link
        reference = vp.parse_authorization_request_uri(text)
        if reference.request_uri_method == "post":
            r = self._call("POST", reference.request_uri, what="request_uri", data=vp.request_uri_post_form())
        else:
            r = self._call("GET", reference.request_uri, what="request_uri",
                           headers={"Accept": f"application/{vp.REQUEST_TYP}"})
        if r.status_code != 200:
            raise PeerResponseInvalid(f"request_uri: HTTP {r.status_code}")
        token = r.text.strip()
        return token, self._verify(token, reference.client_id)

    def _verify(self, token: str, client_id: str) -> vp.AuthorizationRequest:
        return vp.verify_request_object(token, client_id=client_id, trust_anchors=list(self.network.verifier_roots()),
                                        now=self._now())

    def _candidates(self, user: User) -> dict[str, tuple[StoredCredential, dcql.Candidate]]:
        out = {}
        for stored in self.service.credentials(user):
            if stored.status in (CredentialStatus.INVALID, CredentialStatus.SUSPENDED):
                continue
            out[stored.id] = (stored, dcql.Candidate(vct=stored.vct, claims=_claims_of(stored.credential), ref=stored.id))
        return out

    def inspect(self, user: User, *, link: str | bytes) -> RequestPreview:
        """Fetch and check the request behind an ``openid4vp://`` link (text or QR image); what it asks.

        Raises the ``credentials.openid4vp`` codes (``invalid_request``, ``invalid_request_object``,
        ``invalid_client``, ...), ``PeerUnreachable``, ``PeerResponseInvalid``.
        """
        token, request = self._request(link)
        match = dcql.match(request.dcql_query, [c for _, c in self._candidates(user).values()])
        return RequestPreview(
            request_object=token, client_id=request.client_id, verifier_name=request.verifier_name,
            client_name=request.client_name, purpose=request.purpose,
            requested={qid: tuple(_path_text(p) for p in paths) for qid, paths in request.requested_claims.items()},
            offered={qid: tuple(Offered(m.candidate.ref, m.candidate.vct, tuple(_path_text(p) for p in m.disclose))
                                for m in found) for qid, found in match.by_query.items()},
            satisfiable=match.satisfied, expires_at=request.expires_at,
        )

    def respond(self, user: User, *, request_object: str, client_id: str, consent: bool, pin: str | None = None,
                choices: Mapping[str, str] | None = None) -> Answered:
        """Answer a request :meth:`inspect` showed: with consent (and the PIN) the ``vp_token``, else
        ``access_denied``. ``choices`` picks the credential per Credential Query (default: the first).

        Raises the ``credentials.openid4vp`` codes (the request is checked again), the PIN codes,
        ``InvalidValue`` (a choice that does not answer its query, nothing to present),
        ``PeerUnreachable``, ``PeerResponseInvalid`` (the verifier refused the answer).
        """
        request = self._verify(request_object, client_id)
        usage = {"verifier_client_id": request.client_id, "verifier_name": request.verifier_name or request.client_name,
                 "purpose": request.purpose, "nonce": request.nonce, "request_id": request.state}
        if not consent:
            self._post_answer(request, vp.error_response_form(request))
            record = self.service.record_use(user, channel=Channel.OPENID4VP, outcome=Outcome.REFUSED,
                                             credential_ids=[], **usage)
            return Answered("refused", record.id)
        confirmation = self.service.confirm_pin(user, pin or "")
        pool = self._candidates(user)
        match = dcql.match(request.dcql_query, [c for _, c in pool.values()])
        if not match.satisfied:
            raise InvalidValue("nothing this account holds answers the request")
        presentations: dict[str, list[str]] = {}
        used: list[StoredCredential] = []
        disclosed: list[str] = []
        now = self._now()
        for qid in match.selection:
            found = {m.candidate.ref: m for m in match.by_query[qid]}
            chosen = (choices or {}).get(qid) or next(iter(found))
            if chosen not in found:
                raise InvalidValue(f"credential {chosen!r} does not answer {qid!r}")
            stored = pool[chosen][0]
            signer = self._presenter(user, stored, confirmation)
            presentations[qid] = [vp.present_for_request(stored.credential, request=request, disclose=found[chosen].disclose,
                                                         holder_signer=signer, now=now)]
            used.append(stored)
            disclosed += [f"{qid}:{_path_text(p)}" for p in found[chosen].disclose]
        enterprise = next((s.enterprise_id for s in used if s.enterprise_id), None)
        try:
            redirect = self._post_answer(request, vp.response_form(request, presentations))
        except (PeerUnreachable, PeerResponseInvalid):
            self.service.record_use(user, channel=Channel.OPENID4VP, outcome=Outcome.FAILED,
                                    credential_ids=[s.id for s in used], enterprise_id=enterprise,
                                    disclosed=disclosed, **usage)
            raise
        record = self.service.record_use(user, channel=Channel.OPENID4VP, outcome=Outcome.SENT,
                                         credential_ids=[s.id for s in used], enterprise_id=enterprise,
                                         disclosed=disclosed, **usage)
        return Answered("sent", record.id, redirect)

    def _post_answer(self, request: vp.AuthorizationRequest, form: Mapping[str, str]) -> str | None:
        r = self._call("POST", request.response_uri, what="response_uri", data=dict(form),
                       headers={"Accept": "application/json"})
        if r.status_code != 200:
            raise PeerResponseInvalid(f"the verifier refused the answer: HTTP {r.status_code} {r.text[:200]}")
        try:
            answer = r.json() if r.content else {}
        except ValueError:
            answer = {}  # an empty or non-JSON 200 is an acceptance without a redirect
        redirect = answer.get("redirect_uri") if isinstance(answer, dict) else None
        return redirect if isinstance(redirect, str) else None

    # -- see ---------------------------------------------------------------------------------------------

    def card(self, user: User, *, credential_id: str) -> Card:
        """The credential as a card: the type's names and colours, each claim with its zh-CN / en label
        in the type metadata's order, the issuer's names from the trust list, and its status (read from
        the status list again when the last reading is older than ``STATUS_RECHECK``; when that fails,
        the last known status and its time). Raises ``NotFound``."""
        stored = self.service.credential(user, credential_id=credential_id)
        checked = stored.status_checked_at
        if checked is None or (self._now() - checked.timestamp()) > STATUS_RECHECK:
            try:
                stored = self.refresh_status(user, credential_id=credential_id)
            except (PeerUnreachable, PeerResponseInvalid):
                pass  # the card shows the last known status and when it was checked
        ctype = get_type(stored.vct)
        claims = _claims_of(stored.credential)
        fields = []
        for path, value in _leaves(claims, ()):
            fields.append(CardField(_path_text(path), ctype.label(path, "zh-CN"), ctype.label(path, "en"), value))
        try:
            names = dict(self.network.trust().issuer(stored.issuer).name)
        except CredentialError:
            names = {}  # not (or no longer) on the trust list: the card says so by having no name
        rendering = {d.get("locale"): d.get("rendering", {}).get("simple", {}) for d in ctype.metadata.get("display", ())}
        return Card(stored, ctype.name_zh, ctype.name_en, names, tuple(fields), rendering.get("zh-CN") or {},
                    tuple(_path_text(p) for p in ctype.default_qr_claims))

    # -- staff authorisations -------------------------------------------------------------------------

    def _licence(self, user: User, enterprise_id: str) -> StoredCredential:
        for stored in self.service.credentials(user, enterprise_id=enterprise_id):
            if stored.vct == BUSINESS_LICENCE_VCT and stored.user_id is None and stored.status in (None, CredentialStatus.VALID):
                return stored
        raise NotFound("the enterprise has no valid business licence in this wallet")

    def _licence_presentation(self, user: User, licence: StoredCredential, confirmation: Any) -> tuple[str, str]:
        """(issuer, key-bound presentation of the licence's name and legal representative for it)."""
        issuer = licence.issuer
        r = self._call("POST", f"{issuer}/nonce", what="nonce endpoint")
        nonce = _json_object(r).get("c_nonce") if r.status_code == 200 else None
        if not isinstance(nonce, str):
            raise PeerResponseInvalid("the issuer's nonce endpoint gave no c_nonce")
        signer = self.service.signer_for(user, purpose="presentation", enterprise_id=licence.enterprise_id,
                                         confirmation=confirmation)
        presentation = sd_jwt.present(licence.credential, disclose=["name", "legal_representative"],
                                      holder_signer=signer, aud=issuer, nonce=nonce, now=self._now())
        return issuer, presentation

    def authorise_staff(self, user: User, *, enterprise_id: str, member_id: str, scope: Mapping[str, Any],
                        valid_until: date, pin: str, valid_from: date | None = None) -> StoredCredential:
        """Grant a staff member of the enterprise a staff authorisation (授权) and deliver it to their key.

        ``scope``: ``{"all": true}`` or ``{"matters": [...]}``. Only the legal representative or an
        administrator. Raises ``AdministratorRequired``, ``NotFound``, the PIN codes, ``PeerResponseInvalid``
        (the issuer refused: its error code is in the message), and the receive codes.
        """
        # Who may do this is checked before the PIN: a caller without the right spends no PIN attempt.
        staff, staff_signer = self.service.staff_key(user, enterprise_id=enterprise_id, member_id=member_id)
        licence = self._licence(user, enterprise_id)
        confirmation = self.service.confirm_pin(user, pin)
        issuer, presentation = self._licence_presentation(user, licence, confirmation)
        body = {"licence": presentation, "staff": {"name": staff.display_name, "account": staff.phone},
                "scope": dict(scope), "valid_until": valid_until.isoformat(), "staff_jwk": dict(staff_signer.public_jwk)}
        if valid_from is not None:
            body["valid_from"] = valid_from.isoformat()
        r = self._call("POST", f"{issuer}/authorisations", what="authorisation request", json=body)
        answer = _json_object(r)
        if r.status_code != 201:
            raise PeerResponseInvalid(f"the issuer refused the authorisation: {answer.get('error')}: "
                                      f"{str(answer.get('error_description'))[:200]}")
        with self.network.http() as client:
            received = oid4vci_client.receive(answer.get("offer_uri", ""), tx_code=answer.get("tx_code"),
                                              holder=staff_signer, http=client, trust=self.network.trust(),
                                              now=self._now(), allow_http=self.network.allow_http)
        self._check_enterprise(user, enterprise_id, received)
        status = received.status
        return self.service.store_credential(
            staff, credential=received.credential, vct=received.vct, issuer=received.issuer,
            configuration_id=received.configuration_id, holder_kid=staff_signer.kid, enterprise_id=enterprise_id,
            expires_at=received.expires_at, status_list_uri=status.uri if status else None,
            status_list_idx=status.idx if status else None,
        )

    def withdraw_authorisation(self, user: User, *, enterprise_id: str, credential_id: str, pin: str) -> StoredCredential:
        """Withdraw a staff authorisation of the enterprise at its issuer (revoked at once); raises like
        :meth:`authorise_staff`."""
        grant = self.service.enterprise_authorisation(user, enterprise_id=enterprise_id, credential_id=credential_id)
        licence = self._licence(user, enterprise_id)
        confirmation = self.service.confirm_pin(user, pin)
        issuer, presentation = self._licence_presentation(user, licence, confirmation)
        r = self._call("POST", f"{issuer}/authorisations/withdraw", what="authorisation withdrawal",
                       json={"licence": presentation, "authorisation": grant.credential})
        answer = _json_object(r)
        if r.status_code != 200 or answer.get("status") != "revoked":
            raise PeerResponseInvalid(f"the issuer refused the withdrawal: {answer.get('error')}: "
                                      f"{str(answer.get('error_description'))[:200]}")
        return self.service.record_status(grant.id, status=CredentialStatus.INVALID)

    # -- status ------------------------------------------------------------------------------------------

    def refresh_status(self, user: User, *, credential_id: str) -> StoredCredential:
        """Fetch the credential's status list token, verify it with the issuer's key from the trust list,
        and keep the status read. Raises ``NotFound``, ``PeerUnreachable``, ``PeerResponseInvalid``."""
        stored = self.service.credential(user, credential_id=credential_id)
        if stored.status_list_uri is None or stored.status_list_idx is None:
            return stored
        r = self._call("GET", stored.status_list_uri, what="status list",
                       headers={"Accept": status_list.MEDIA_TYPE})
        if r.status_code != 200:
            raise PeerResponseInvalid(f"status list: HTTP {r.status_code}")
        try:
            trusted = self.network.trust().issuer(stored.issuer)
            verified = status_list.verify_status_list_token(r.text.strip(), key=lambda header: trusted.key(header.get("kid")),
                                                            expected_uri=stored.status_list_uri, now=self._now())
            value = status_list.status_of(verified, stored.status_list_idx)
        except CredentialError as exc:
            raise PeerResponseInvalid(f"status list: {exc.code}: {exc.detail}") from exc
        return self.service.record_status(stored.id, status=_STATUS_NAMES.get(value, CredentialStatus.INVALID))


def _json_object(r: _Answer) -> dict[str, Any]:
    try:
        answer = r.json()
    except ValueError as exc:
        raise PeerResponseInvalid(f"HTTP {r.status_code} without a JSON body") from exc
    if not isinstance(answer, dict):
        raise PeerResponseInvalid(f"HTTP {r.status_code} without a JSON object")
    return answer
