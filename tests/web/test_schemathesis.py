"""schemathesis over /openapi.json against the app: no server error, and every status code and
content type the service answers is one the spec declares. Bounded (few examples per operation,
SQLite only) so CI keeps it; run with more examples by hand (SCHEMATHESIS_EXAMPLES=200)."""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture
def api(db_url, make_app):
    if not db_url.startswith("sqlite"):
        pytest.skip("bounded run on SQLite only")
    app = make_app(RATELIMIT_DEFAULT="")  # schemathesis sends many requests; limits are tested elsewhere
    return app


@pytest.fixture
def credentials(api, signing_key):
    """A person's Clerk token and an audit:read API key: every case is sent with each."""
    from tests.web.conftest import AuthActions
    actions = AuthActions(api, signing_key)
    return [actions.user("alice"), actions.service("acme", "audit:read", name="auditor")]


def test_every_operation_keeps_its_openapi_contract(api, credentials):
    # Each operation in turn, with hypothesis driving schemathesis' strategy for it (the
    # pytest plugin's lazy fixtures do not run under pytest 9).
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        for mode in schemathesis.GenerationMode:  # valid inputs, then invalid ones
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                for headers in credentials:
                    case.call_and_validate(headers=headers, checks=CHECKS)
            try:
                run()
            except Unsatisfiable:
                assert mode == schemathesis.GenerationMode.NEGATIVE  # nothing to get wrong: no parameters
