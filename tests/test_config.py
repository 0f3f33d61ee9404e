"""Configuration safety."""
import pytest

from src import create_app
from src.config import DEFAULT_ADMIN_PASSWORD, DEFAULT_JWT_SECRET, ConfigError, ProductionConfig, get_config

STRONG_SECRET = "k" * 48


def production(**attrs):
    return type("Prod", (ProductionConfig,), attrs)


def test_production_refuses_the_default_jwt_secret():
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        create_app(production(JWT_SECRET_KEY=DEFAULT_JWT_SECRET, ADMIN_PASSWORD="a-real-password"))


def test_production_refuses_a_short_jwt_secret():
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        create_app(production(JWT_SECRET_KEY="short", ADMIN_PASSWORD="a-real-password"))


def test_production_refuses_the_default_admin_password():
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD"):
        create_app(production(JWT_SECRET_KEY=STRONG_SECRET, ADMIN_PASSWORD=DEFAULT_ADMIN_PASSWORD))


def test_production_starts_with_both_set():
    app = create_app(production(JWT_SECRET_KEY=STRONG_SECRET, ADMIN_PASSWORD="a-real-password",
                                SCHEDULER_ENABLED=False, MONGO_URI=None, ALLOW_EMBEDDED_DB=True,
                                SOCKETIO_ASYNC_MODE="threading"))
    client = app.test_client()
    assert client.post("/api/auth/login", json={"email": "admin@smartcity.com", "password": "admin123"}
                       ).status_code == 401
    assert client.post("/api/auth/login", json={"email": "admin@smartcity.com", "password": "a-real-password"}
                       ).status_code == 200


def test_unknown_app_env_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        get_config("staging-ish")


def test_production_refuses_the_embedded_database_unless_allowed():
    with pytest.raises(ConfigError, match="MONGO_URI must be set"):
        create_app(production(JWT_SECRET_KEY=STRONG_SECRET, ADMIN_PASSWORD="a-real-password", MONGO_URI=None,
                              ALLOW_EMBEDDED_DB=False))


def test_production_runs_no_simulator_or_demo_seed_by_default():
    config = ProductionConfig()
    assert config.SIMULATION_ENABLED is False and config.SEED_CITY is False
    development = get_config("development")
    assert development.SIMULATION_ENABLED is True and development.SEED_CITY is True


def test_a_config_error_at_start_is_one_line_and_exit_2():
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = dict(os.environ, APP_ENV="development", ADMIN_PASSWORD="p" * 73, PORT="1", SCHEDULER_ENABLED="false")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "run.py")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "ADMIN_PASSWORD must be at most 72 bytes" in lines[0], lines


@pytest.mark.parametrize("username", ["ab", "a" * 33, "has space", "ünïcode"])
def test_an_admin_username_the_users_validator_would_refuse_stops_start_up(username):
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="ADMIN_USERNAME"):
        create_app(make_config(ADMIN_USERNAME=username))


@pytest.mark.parametrize("email", ["admin", "admin@", "@smartcity.com", "ad min@smartcity.com"])
def test_an_admin_email_that_is_not_one_stops_start_up(email):
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="ADMIN_EMAIL"):
        create_app(make_config(ADMIN_EMAIL=email))


def test_the_admin_username_rule_is_the_registration_rule():
    from src import config
    from src.schemas import auth

    assert config.USERNAME_PATTERN == auth.USERNAME.regex.pattern
    assert not get_config("testing").problems()  # the defaults pass
