"""Settings of an eLicence deployment, read from the environment once and validated at start.

=========================  ==========================================  ======================================
variable                   default                                     production mode requires
=========================  ==========================================  ======================================
``ELICENCE_MODE``          ``demo``                                    ``production``
``ELICENCE_DATABASE_URL``  ``sqlite:///var/elicence.db``               a PostgreSQL URL
``ELICENCE_HOST``          ``127.0.0.1``
``ELICENCE_PORT``          ``8000``
``ELICENCE_PUBLIC_URL``    ``http://127.0.0.1:<port>``                 ``https://`` and not a loopback host
``ELICENCE_KEK``           (none)                                      exactly one of the two, a valid KEK
``ELICENCE_KEK_FILE``      demo: ``<var>/kek``, created once (0600)
``ELICENCE_TRUST_OPERATOR_KEY_FILE``  demo: ``<var>/trust-operator.jwk``,   optional: without it the deployment
                           created once (0600)                         publishes no trust list
``ELICENCE_CATALOGUE_DIR`` the shipped ``verifier/catalogue/``         optional: a directory whose ``*.json``
                                                                       service items replace the shipped ones
``ELICENCE_STATUS_TTL``    ``60``                                      1 to 3600 seconds: how long verifiers
                                                                       may cache a served status list (its
                                                                       ``ttl`` and ``Cache-Control`` max-age)
``ELICENCE_PURGE_INTERVAL`` ``600``                                    0 to 86400 seconds: how often expired
                                                                       nonces, tokens and finished
                                                                       transactions are deleted (0: never;
                                                                       :mod:`elicence.housekeeping`)
=========================  ==========================================  ======================================

Demo mode accepts the embedded defaults; production mode refuses every placeholder with a message
that names the variable and what to set instead (CONVENTIONS.md, services: "Settings are validated
at start and refuse placeholder secrets outside the demo"). All problems are reported at once.

The key-encryption key never lives in the database (DESIGN.md, security model): it comes from
``ELICENCE_KEK`` (base64url) or a file. In demo mode, when neither is set, :meth:`Settings.kek`
generates one into ``<var>/kek`` with mode 0600 the first time and reads it afterwards.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from keys.errors import KeystoreError
from keys.keystore import KEK_ENV, KEK_FILE_ENV, KekInvalid, KekMissing, load_kek, write_kek_file

__all__ = [
    "MODE_ENV",
    "DATABASE_URL_ENV",
    "HOST_ENV",
    "PORT_ENV",
    "PUBLIC_URL_ENV",
    "TRUST_KEY_FILE_ENV",
    "CATALOGUE_DIR_ENV",
    "STATUS_TTL_ENV",
    "PURGE_INTERVAL_ENV",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_STATUS_TTL",
    "DEFAULT_PURGE_INTERVAL",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Mode",
    "ConfigError",
    "Settings",
]

MODE_ENV = "ELICENCE_MODE"
DATABASE_URL_ENV = "ELICENCE_DATABASE_URL"
HOST_ENV = "ELICENCE_HOST"
PORT_ENV = "ELICENCE_PORT"
PUBLIC_URL_ENV = "ELICENCE_PUBLIC_URL"
TRUST_KEY_FILE_ENV = "ELICENCE_TRUST_OPERATOR_KEY_FILE"
CATALOGUE_DIR_ENV = "ELICENCE_CATALOGUE_DIR"
STATUS_TTL_ENV = "ELICENCE_STATUS_TTL"
PURGE_INTERVAL_ENV = "ELICENCE_PURGE_INTERVAL"
DEFAULT_PURGE_INTERVAL = 600
#: Seconds a verifier may cache a status list: the longest a revocation stays unseen at a counter.
DEFAULT_STATUS_TTL = 60

DEFAULT_DATABASE_URL = "sqlite:///var/elicence.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_VAR_DIR = Path("var")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Mode(enum.StrEnum):
    """``demo`` accepts embedded defaults; ``production`` refuses placeholders."""

    DEMO = "demo"
    PRODUCTION = "production"


class ConfigError(Exception):
    """The environment does not describe a deployment we may start; ``problems`` lists every reason."""

    code: ClassVar[str] = "config_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in self.problems))


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Settings:
    """A validated configuration. Build it with :meth:`from_env`; the KEK is read by :meth:`kek`."""

    mode: Mode
    database_url: str = field(repr=False)  # may carry a password: see :meth:`describe`
    host: str
    port: int
    public_url: str
    #: The KEK file to read (``ELICENCE_KEK_FILE``, or ``<var>/kek`` in demo mode); ``None`` when the
    #: KEK comes from ``ELICENCE_KEK``.
    kek_file: Path | None
    var_dir: Path
    #: Demo mode without a configured KEK: :meth:`kek` creates ``kek_file`` the first time.
    kek_generated: bool = False
    #: The trust list operator's private JWK file (created once in demo mode); ``None``: no trust list.
    trust_key_file: Path | None = None
    #: The deployment's own service item catalogue (every ``*.json`` in it); ``None``: the shipped one.
    catalogue_dir: Path | None = None
    #: The ``ttl`` of the served status list tokens (seconds).
    status_ttl: int = DEFAULT_STATUS_TTL
    #: Seconds between two purges of expired values (:mod:`elicence.housekeeping`); 0: never.
    purge_interval: int = DEFAULT_PURGE_INTERVAL
    _kek_inline: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, var_dir: str | os.PathLike[str] | None = None) -> Settings:
        """Read and check the settings; raises ``ConfigError`` listing every problem found."""
        env = os.environ if env is None else env
        var = Path(var_dir) if var_dir is not None else DEFAULT_VAR_DIR
        problems: list[str] = []

        mode_text = env.get(MODE_ENV, Mode.DEMO.value).strip().lower() or Mode.DEMO.value
        try:
            mode = Mode(mode_text)
        except ValueError:
            problems.append(f"{MODE_ENV}={mode_text!r}: use 'demo' or 'production'")
            mode = Mode.PRODUCTION  # judge the rest by the stricter rules
        production = mode is Mode.PRODUCTION

        port = DEFAULT_PORT
        port_text = env.get(PORT_ENV, "").strip()
        if port_text:
            if port_text.isdigit() and 1 <= int(port_text) <= 65535:
                port = int(port_text)
            else:
                problems.append(f"{PORT_ENV}={port_text!r}: a TCP port is an integer from 1 to 65535")

        host = env.get(HOST_ENV, "").strip() or DEFAULT_HOST

        database_url = env.get(DATABASE_URL_ENV, "").strip() or DEFAULT_DATABASE_URL
        try:
            backend = make_url(database_url).get_backend_name()
        except ArgumentError:
            problems.append(f"{DATABASE_URL_ENV} is not a database URL (e.g. postgresql+psycopg://user@host/db)")
            backend = ""
        if backend and backend not in ("sqlite", "postgresql"):
            problems.append(f"{DATABASE_URL_ENV}: {backend!r} is not supported; use PostgreSQL (or SQLite for a demo)")
        if production and backend == "sqlite":
            problems.append(
                f"{DATABASE_URL_ENV} is SQLite, the embedded demo database; production needs PostgreSQL "
                "(postgresql+psycopg://user:password@host:5432/elicence)"
            )

        public_url = (env.get(PUBLIC_URL_ENV, "").strip() or f"http://{DEFAULT_HOST}:{port}").rstrip("/")
        problems.extend(_public_url_problems(public_url, production))

        kek_inline, kek_file = _kek_source(env, var, production, problems)

        catalogue_text = env.get(CATALOGUE_DIR_ENV, "").strip()
        catalogue_dir = Path(catalogue_text) if catalogue_text else None
        if catalogue_dir is not None and not (catalogue_dir.is_dir() and any(catalogue_dir.glob("*.json"))):
            problems.append(f"{CATALOGUE_DIR_ENV}={catalogue_text!r}: not a directory of service item files (*.json)")

        ttl_text = env.get(STATUS_TTL_ENV, "").strip() or str(DEFAULT_STATUS_TTL)
        status_ttl = int(ttl_text) if ttl_text.isdigit() else 0
        if not 1 <= status_ttl <= 3600:
            problems.append(f"{STATUS_TTL_ENV}={ttl_text!r}: a whole number of seconds from 1 to 3600")

        purge_text = env.get(PURGE_INTERVAL_ENV, "").strip() or str(DEFAULT_PURGE_INTERVAL)
        purge_interval = int(purge_text) if purge_text.isdigit() else -1
        if not 0 <= purge_interval <= 86400:
            problems.append(f"{PURGE_INTERVAL_ENV}={purge_text!r}: a whole number of seconds from 0 (never) to 86400")

        if problems:
            raise ConfigError(problems)
        return cls(
            mode=mode,
            database_url=database_url,
            host=host,
            port=port,
            public_url=public_url,
            kek_file=kek_file,
            var_dir=var,
            kek_generated=kek_inline is None and not env.get(KEK_FILE_ENV, "").strip(),
            trust_key_file=Path(env[TRUST_KEY_FILE_ENV].strip()) if env.get(TRUST_KEY_FILE_ENV, "").strip()
            else None if production else var / "trust-operator.jwk",
            catalogue_dir=catalogue_dir,
            status_ttl=status_ttl,
            purge_interval=purge_interval,
            _kek_inline=kek_inline,
        )

    @property
    def production(self) -> bool:
        """Whether placeholders are refused."""
        return self.mode is Mode.PRODUCTION

    def kek(self) -> bytes:
        """The key-encryption key: from ``ELICENCE_KEK``, or the KEK file (created once in demo mode).

        Raises ``KekMissing`` / ``KekInvalid`` (``keys.keystore``) when it cannot be read, and
        ``KeystoreError`` when the demo file cannot be created.
        """
        if self._kek_inline is not None:
            return self._kek_inline
        if self.kek_file is None:  # pragma: no cover - from_env always sets one of the two
            raise KekMissing()
        if self.kek_generated and not self.kek_file.exists():
            self.kek_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                return write_kek_file(self.kek_file)
            except KeystoreError:
                if not self.kek_file.exists():  # lost a race with another worker: read its key below
                    raise
        return load_kek(env={KEK_FILE_ENV: str(self.kek_file)})

    def describe(self) -> dict[str, str]:
        """The settings for a start-up banner or a log line: the database password is masked."""
        return {
            "mode": self.mode.value,
            "database": make_url(self.database_url).render_as_string(hide_password=True),
            "listen": f"{self.host}:{self.port}",
            "public_url": self.public_url,
            "kek": f"file {self.kek_file}" if self.kek_file is not None else f"${KEK_ENV}",
        }


def _public_url_problems(public_url: str, production: bool) -> list[str]:
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{PUBLIC_URL_ENV}={public_url!r}: an absolute http(s) URL such as https://licence.example.gov.cn"]
    if parts.query or parts.fragment or parts.username or parts.password:
        return [f"{PUBLIC_URL_ENV}: no query, fragment or credentials (it prefixes every issuer identifier)"]
    problems = []
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        # Issuer identifiers are https URLs (OpenID4VCI "Credential Issuer Identifier"; SD-JWT VC `iss`);
        # credentials.sd_jwt_vc accepts http only for loopback hosts, so nothing else could verify.
        problems.append(f"{PUBLIC_URL_ENV}={public_url!r}: http is accepted only for loopback hosts; use https")
    elif production and parts.scheme != "https":
        problems.append(f"{PUBLIC_URL_ENV} is {parts.scheme}://; production issuer identifiers must be https://")
    if production and _is_loopback(parts.hostname):
        problems.append(f"{PUBLIC_URL_ENV} names the loopback host {parts.hostname!r}: set the public https name")
    return problems


def _kek_source(
    env: Mapping[str, str], var: Path, production: bool, problems: list[str]
) -> tuple[bytes | None, Path | None]:
    """(inline KEK, KEK file): exactly one is set when no problem was added."""
    value, path = env.get(KEK_ENV, "").strip(), env.get(KEK_FILE_ENV, "").strip()
    if value and path:
        problems.append(f"set only one of {KEK_ENV} and {KEK_FILE_ENV}")
        return None, None
    if not value and not path:
        if production:
            problems.append(
                f"no key-encryption key: production needs {KEK_ENV} (32 random bytes, base64url) or "
                f"{KEK_FILE_ENV} (a 0600 file holding it), kept outside the database and its backups"
            )
            return None, None
        return None, var / "kek"
    try:  # validated at start, so a bad key fails now and not at the first signature
        kek = load_kek(env={KEK_ENV: value} if value else {KEK_FILE_ENV: path})
    except (KekMissing, KekInvalid) as exc:
        problems.append(exc.detail)
        return None, None
    return (kek, None) if value else (None, Path(path))
