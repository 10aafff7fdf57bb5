"""How the service and its CLI end when they cannot do their job: one line on stderr and a
documented exit code (README), never a traceback."""
from __future__ import annotations

import sys

EXIT_FAILED = 1    # verification failed, or the thing asked for does not exist
EXIT_CONFIG = 2    # a refused setting, or a wrong command line
EXIT_USAGE = EXIT_CONFIG
EXIT_STORAGE = 3   # the database cannot be reached


def fail(code: int, message: str) -> None:
    print(f"connection-ledger: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def storage_message(exc: BaseException) -> str | None:
    """One line naming why the database could not be reached, or None if `exc` is something else."""
    from ledger.storage.engine import unreachable_reason
    return unreachable_reason(exc)
