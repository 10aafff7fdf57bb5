from tests.web.conftest import (_composio_server, app, auth, client, composio, jwks, make_app,  # noqa: F401
                                runner, signing_key)
