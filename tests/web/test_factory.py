"""The app factory honours configuration and refuses unsafe values."""
import pytest

from web import create_app
from web.config import ConfigError


def test_settings_come_from_the_environment_and_overrides_win(monkeypatch, tmp_path):
    monkeypatch.setenv("DISCONNECT_GRACE_SECONDS", "120")
    monkeypatch.setenv("COMPOSIO_USER_ID_PREFIX", "env_")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "COMPOSIO_USER_ID_PREFIX": "tenant_"})
    assert app.config["DISCONNECT_GRACE_SECONDS"] == 120
    assert app.config["COMPOSIO_USER_ID_PREFIX"] == "tenant_"
    assert app.test_client().get("/readyz").status_code == 200  # migrations applied at start


@pytest.mark.parametrize("bad", [{"WEBHOOK_TOLERANCE_SECONDS": "0"}, {"WEBHOOK_TOLERANCE_SECONDS": "-5"},
                                 {"DISCONNECT_GRACE_SECONDS": "soon"}, {"LEDGER_ENV": "staging"}])
def test_unsafe_values_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", **bad})


def test_production_refuses_to_start_without_real_composio_and_clerk(tmp_path):
    with pytest.raises(ConfigError) as caught:
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "LEDGER_ENV": "production"})
    assert "COMPOSIO_API_KEY" in str(caught.value) and "CLERK" in str(caught.value)


def test_production_never_accepts_development_tokens(tmp_path):
    from web.dev_tokens import load_or_create_dev_key, mint_dev_token, DEV_ISSUER
    key = load_or_create_dev_key(str(tmp_path / "inst"))
    token = mint_dev_token(key, "alice", issuer=DEV_ISSUER)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "LEDGER_ENV": "production",
                      "COMPOSIO_API_KEY": "k", "COMPOSIO_WEBHOOK_SECRET": "s", "CLERK_ISSUER": "https://clerk.example",
                      "CLERK_JWT_KEY": key.public_pem})
    resp = app.test_client().get("/api/connections", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
