"""Migrations, run by Alembic from the repository's migrations/ folder (no Flask needed)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]  # the repository: alembic.ini, migrations/


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["quiet"] = True
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str = "sqlite://") -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_locked(engine: Engine) -> None:
    """Upgrade to head with other starting workers held off (gunicorn starts several at once)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(7274001)")
            try:
                conn.commit()
                cfg = alembic_config(str(engine.url))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7274001)")
                conn.commit()
        return
    import fcntl
    db = engine.url.database
    if not db or db == ":memory:":
        upgrade(engine.url.render_as_string(hide_password=False))
        return
    with open(f"{db}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current_revision(engine) != head_revision():
            upgrade(engine.url.render_as_string(hide_password=False))
