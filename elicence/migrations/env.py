"""Alembic environment of eLicence: one environment, one version folder and branch label per role.

Run through :func:`elicence.db.migrate` (which passes an open connection in
``config.attributes["connection"]``), or by hand for a new revision::

    .venv/bin/python -c "from elicence.db import alembic_config; from alembic import command; \\
        command.revision(alembic_config(), 'message', head='issuer@head', autogenerate=False)"

Autogenerate compares against :func:`elicence.db.role_metadata`; read every generated script before
committing it (type changes and server defaults need a human).
"""

from __future__ import annotations

from alembic import context

from elicence.db import make_engine, role_metadata

config = context.config
target_metadata = role_metadata()


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most constraints: batch mode rebuilds tables when a migration needs it.
        render_as_batch=True,
        **kwargs,
    )


def run_offline() -> None:
    """Emit SQL for ``alembic upgrade --sql`` without a database."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the caller's connection, or one opened from ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
