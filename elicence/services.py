"""Opening a role's service on the deployment's settings: its database (created and migrated to head)
and the KEK, without the web framework.

:mod:`elicence.app` composes these into the served app; the command line opens the issuer from here, so
that ``elicence issuer ...`` does not import FastAPI and the other roles' HTTP layers (about 0.7 s of a
bulk issuance's start-up).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from elicence.config import Settings
from elicence.db import make_engine, migrate, session_factory
from issuer.service import IssuerPolicy, IssuerService

__all__ = ["database_sessions", "open_issuer"]


def database_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the settings' database, created and migrated to head first."""
    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)


def open_issuer(settings: Settings, *, sessions: sessionmaker[Session] | None = None) -> IssuerService:
    """The issuer service on the settings' database (created and migrated to head) and KEK."""
    return IssuerService(sessions=sessions or database_sessions(settings), kek=settings.kek(),
                         public_url=settings.public_url, policy=IssuerPolicy(status_ttl=settings.status_ttl))
