"""The container files, read the way Docker and compose read them (no Docker engine needed).

docker-compose.yml, docker-compose.tls.yml, Dockerfile and .env.example: what the services get
from the environment, what the health probes ask, and whether what nginx includes is mounted.
"""
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_nginx import start_together, without_mongodb

SECRETS = {"JWT_SECRET_KEY": "k" * 48, "ADMIN_PASSWORD": "a-real-admin-password"}
TLS_FILES = {"TLS_CERT": "/certs/fullchain.pem", "TLS_KEY": "/certs/privkey.pem"}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(value, env):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match):
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1] or match[4], match[2], match[3]
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("?") and unset:
            raise ValueError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return current or ""

    return VARIABLE.sub(one, value)


def compose(*names, env=None):
    """The compose files merged (services only, as far as these tests need) and interpolated."""
    merged = {}
    for name in names:
        with open(os.path.join(ROOT, name), encoding="utf-8") as fh:
            data = interpolate(yaml.safe_load(fh), dict(SECRETS) if env is None else env)
        for service, spec in data.get("services", {}).items():
            into = merged.setdefault(service, {})
            for key, value in spec.items():
                if key == "volumes":  # a mount with the same container path replaces the earlier one
                    mounts = {mount.split(":")[1]: mount for mount in into.get("volumes", [])}
                    mounts.update({mount.split(":")[1]: mount for mount in value})
                    into["volumes"] = list(mounts.values())
                elif key == "ports":
                    into["ports"] = into.get("ports", []) + value
                else:
                    into[key] = value
    return merged


def truthy(value):
    """How src/config.py reads a boolean."""
    return value is not None and str(value).strip().lower() in ("1", "true", "yes", "on")


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as fh:
        return fh.read()


def env_example():
    values = {}
    for line in read(".env.example").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# --- the demo stays out of production -------------------------------------------------------

def production_flags(environment):
    """SIMULATION_ENABLED and SEED_CITY as the server would read them from this environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("SIMULATION_ENABLED", "SEED_CITY")}
    env.update({k: str(v) for k, v in environment.items()})
    code = ("from src.config import get_config; c = get_config(); "
            "print(c.ENV_NAME, c.SIMULATION_ENABLED, c.SEED_CITY)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_compose_runs_no_simulators_and_no_demo_seed_unless_asked_for():
    services = compose("docker-compose.yml")
    for name in ("backend", "worker"):
        environment = services[name]["environment"]
        assert not truthy(environment.get("SIMULATION_ENABLED")), (name, environment)
        assert not truthy(environment.get("SEED_CITY")), (name, environment)
    assert production_flags(services["backend"]["environment"]) == ["production", "False", "False"]

    # The demo, asked for in .env or the shell, reaches both.
    demo = compose("docker-compose.yml", env=dict(SECRETS, SIMULATION_ENABLED="true", SEED_CITY="true"))
    for name in ("backend", "worker"):
        assert demo[name]["environment"]["SIMULATION_ENABLED"] == "true"
        assert demo[name]["environment"]["SEED_CITY"] == "true"
    assert production_flags(demo["backend"]["environment"]) == ["production", "True", "True"]


def test_env_example_placeholders_are_refused():
    values = env_example()
    assert set(SECRETS) <= set(values)
    # compose refuses to interpolate them...
    with pytest.raises(ValueError, match="JWT_SECRET_KEY"):
        compose("docker-compose.yml", env=values)
    # ...and the server refuses to start in production with them.
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(values, APP_ENV="production", MONGO_URI="mongodb://mongo:27017/citypulse")
    out = subprocess.run([sys.executable, "-c", "from src.config import get_config; get_config().validate()"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "JWT_SECRET_KEY" in out.stderr and "ADMIN_PASSWORD" in out.stderr
    # The optional settings the README points to are listed there.
    text = read(".env.example")
    for name in ("SIMULATION_ENABLED=true", "SEED_CITY=true", "TLS_CERT=", "TLS_KEY="):
        assert name in text


# --- health probes ------------------------------------------------------------------------

def dockerfile_healthcheck():
    """The shell command of the Dockerfile's HEALTHCHECK."""
    text = read("Dockerfile").replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\s.*?\bCMD\s+(.+)$", text, flags=re.M)
    assert match, "the Dockerfile has no HEALTHCHECK"
    return match[1]


def test_probes_ask_for_readiness():
    assert "/api/health/ready" in dockerfile_healthcheck()
    services = compose("docker-compose.yml")
    assert "/api/health/ready" in " ".join(services["backend"]["healthcheck"]["test"])
    # nginx resolves the backends once, at start: it waits until they are ready.
    assert services["nginx"]["depends_on"]["backend"]["condition"] == "service_healthy"
    # The worker serves no HTTP, so the image's probe must not run there.
    assert services["worker"]["healthcheck"] == {"disable": True}


def run_probe(argv_or_shell, server):
    """Run a probe as the container would, with this venv's python and the server's PORT."""
    env = dict(os.environ, PORT=str(server.port),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    argv = ["/bin/sh", "-c", argv_or_shell] if isinstance(argv_or_shell, str) else argv_or_shell
    return subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode


@pytest.mark.live
def test_probes_pass_when_ready_and_fail_without_mongodb(live_server):
    ready, unready = start_together(live_server, lambda: live_server(**without_mongodb()))
    compose_test = compose("docker-compose.yml")["backend"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD"
    for probe in (dockerfile_healthcheck(), compose_test[1:]):
        assert run_probe(probe, ready) == 0, probe
        assert run_probe(probe, unready) != 0, probe


# --- nginx in compose -----------------------------------------------------------------------

def includes(conf, seen=None):
    """Every file `conf` includes, recursively, as written (relative to nginx's conf directory)."""
    seen = [] if seen is None else seen
    for name in re.findall(r"^\s*include\s+([^;\s]+);", read(conf), flags=re.M):
        if name not in seen:
            seen.append(name)
            includes(name, seen)
    return seen


def mounted(services, target):
    """The repo path mounted at container path `target` (or at a folder above it)."""
    for mount in services["nginx"]["volumes"]:
        source, path = mount.split(":")[:2]
        if target == path or target.startswith(path.rstrip("/") + "/"):
            return os.path.normpath(source + target[len(path):])
    return None


@pytest.mark.parametrize("files, entry", [
    (("docker-compose.yml",), "nginx.conf"),
    (("docker-compose.yml", "docker-compose.tls.yml"), "nginx-tls.conf"),
])
def test_nginx_gets_its_config_and_every_file_it_includes(files, entry):
    services = compose(*files, env=dict(SECRETS, **TLS_FILES))
    assert mounted(services, "/etc/nginx/nginx.conf") == entry
    names = includes(entry)
    assert names, f"{entry} includes the shared upstream and locations"
    for name in names:
        assert mounted(services, "/etc/nginx/" + name) == os.path.normpath(name), name
        assert os.path.exists(os.path.join(ROOT, name)), name
    for mount in services["nginx"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("."):
            assert os.path.exists(os.path.join(ROOT, source)), mount


def test_tls_overlay_mounts_the_certificate_where_nginx_tls_conf_reads_it():
    conf = read("nginx-tls.conf")
    services = compose("docker-compose.yml", "docker-compose.tls.yml", env=dict(SECRETS, **TLS_FILES))
    for directive, variable in (("ssl_certificate", "TLS_CERT"), ("ssl_certificate_key", "TLS_KEY")):
        path = re.search(rf"^\s*{directive}\s+(\S+);", conf, flags=re.M)[1]
        assert mounted(services, path) == TLS_FILES[variable]
    assert "443:443" in services["nginx"]["ports"] and "80:80" in services["nginx"]["ports"]
    with pytest.raises(ValueError, match="TLS_CERT"):
        compose("docker-compose.yml", "docker-compose.tls.yml")


# --- one database name ----------------------------------------------------------------------

@pytest.mark.parametrize("name", [None, "city_two"])
def test_mongo_init_and_the_server_use_the_same_database(name):
    env = dict(SECRETS, **({"MONGO_DB_NAME": name} if name else {}))
    services = compose("docker-compose.yml", env=env)
    expected = name or "citypulse"
    # The server (src/config.py) and mongo-init.js (inside the mongo container) both read MONGO_DB_NAME.
    for service in ("backend", "worker", "mongo"):
        assert services[service]["environment"]["MONGO_DB_NAME"] == expected, service
    assert services["mongo"]["environment"].get("MONGO_INITDB_DATABASE", expected) == expected
    script = read("mongo-init.js")
    assert re.search(r"const dbName = process\.env\.MONGO_DB_NAME\b", script)
