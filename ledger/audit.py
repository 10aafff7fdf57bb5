"""`python -m ledger.audit`: the entry auditors know (README); the tool is ledger/offline_audit.py."""
import sys

from .offline_audit import main

if __name__ == "__main__":
    sys.exit(main())
