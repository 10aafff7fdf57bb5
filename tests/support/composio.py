"""The local Composio-compatible server, started on 127.0.0.1 for the tests."""
from web.dev.composio_server import FakeComposio


def start_fake_composio() -> FakeComposio:
    return FakeComposio().start()
