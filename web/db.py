"""Migrations for the Flask side: the storage room's (ledger/storage/migrate.py) re-exported."""
from ledger.storage.migrate import (alembic_config, current_revision, head_revision, upgrade,  # noqa: F401
                                    upgrade_locked)
