"""The use cases: the only callers of a ledger transaction (tests/test_layers.py holds the rule).

Each one opens the one transaction (`Ledger.transaction`), reads through the unit of work, calls a
pure decision (ledger/decisions.py) and appends; SQL stays in ledger/storage/.

connections       commands on a connection: start, disconnect, restore, bind, unbind
connection_reads  reads for its owner: get (and OAuth polling), list, preflight, history, agents
webhooks          recording a verified Composio webhook, once per webhook-id
relay             carrying out the Composio actions the outbox owes; retry, backlog, list
reconcile         walking Composio's accounts and recording drift
heads             signing the chain's head into the chain
apikeys           service API keys (hashed at rest)
"""
