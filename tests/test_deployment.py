"""The deployment files, checked by parsing (no Docker engine runs here).

docker-compose.twenty.yml must run Twenty (server, worker, postgres, redis; pinned release,
health checks) with the bridge wired to it; .env.example must document every variable the
compose file reads and every bridge setting a deployment needs; the Dockerfile must run the
bridge as a non-root user.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bridge.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.twenty.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`… (`$$` is an escaped dollar, not a variable).
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# Settings a deployment does not set: the image ships its own data model.
NOT_FOR_DEPLOYMENT = {"BRIDGE_SCHEMA_DIR"}
# The bridge cannot run without these; .env.example must show them, not hide them in comments.
REQUIRED_IN_ENV_EXAMPLE = {
    "APP_SECRET",
    "PG_DATABASE_PASSWORD",
    "TWENTY_API_KEY",
    "BRIDGE_SECRET_KEY",
    "BRIDGE_ADMIN_PASSWORD",
    "BRIDGE_PUBLIC_URL",
    "WHOP_WEBHOOK_SECRET",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def settings_variables() -> set[str]:
    return {(info.alias or name).upper() for name, info in Settings.model_fields.items()}


def env_example_names(*, commented: bool) -> set[str]:
    """Variable names .env.example assigns (`NAME=`), optionally counting `# NAME=` lines too."""
    pattern = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return {
        m.group(2) for m in pattern.finditer(ENV_EXAMPLE.read_text(encoding="utf-8")) if commented or not m.group(1)
    }


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(str(part) for part in test[1:])


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must use the long form with conditions"
    return {name: spec.get("condition", "") for name, spec in deps.items()}


def interpolate(value: str) -> str:
    """The value as compose would resolve it with no .env: defaults, and `value` for the rest."""
    return VARIABLE.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "value", value)


def default_of(value: str) -> str:
    """`${NAME:-default}` → default; a plain value → itself."""
    match = VARIABLE.fullmatch(value)
    return match.group(3) if match and match.group(2) in (":-", "-") else value


# Compose file ----------------------------------------------------------------------------------


def test_services_exist(services: dict[str, Any]) -> None:
    assert {"server", "worker", "db", "redis", "bridge"} <= set(services)


def test_twenty_image_is_pinned_to_a_release(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in ("server", "worker")}
    assert len(images) == 1, "server and worker must run the same image"
    image = images.pop()
    repository, _, tag = image.partition(":")
    assert repository == "twentycrm/twenty"
    tag = default_of(tag)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"Twenty must be pinned to a release tag, not {tag!r}"
    # .env.example pins the same release as the compose default.
    assert re.search(rf"^TAG={re.escape(tag)}$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE)


def test_supporting_images(services: dict[str, Any]) -> None:
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert "noeviction" in services["redis"]["command"]


def test_health_checks(services: dict[str, Any]) -> None:
    assert "curl --fail http://localhost:3000/healthz" in healthcheck_command(services["server"])
    assert "pg_isready" in healthcheck_command(services["db"])
    assert "redis-cli ping" in healthcheck_command(services["redis"])
    bridge = healthcheck_command(services["bridge"])
    assert "/healthz" in bridge and ":8000" in bridge
    for name in ("server", "db", "redis", "bridge"):
        assert services[name]["healthcheck"].get("retries", 0) >= 3


def test_twenty_server_and_worker(services: dict[str, Any]) -> None:
    server, worker = environment(services["server"]), environment(services["worker"])
    for env in (server, worker):
        assert urlsplit(interpolate(env["PG_DATABASE_URL"])).netloc.endswith("@db:5432")
        assert env["REDIS_URL"] == "redis://redis:6379"
        assert default_of(env["STORAGE_TYPE"]) == "local"
        assert env["SERVER_URL"]
        # APP_SECRET must be given: compose refuses to start without it (`:?`).
        assert re.fullmatch(r"\$\{APP_SECRET:\?[^}]+\}", env["APP_SECRET"])
    assert server["APP_SECRET"] == worker["APP_SECRET"]
    assert worker["DISABLE_DB_MIGRATIONS"] == "true"
    assert worker["DISABLE_CRON_JOBS_REGISTRATION"] == "true"
    assert services["worker"]["command"] == ["yarn", "worker:prod"]
    assert "DISABLE_DB_MIGRATIONS" not in server
    assert depends_on(services["server"]) == {"db": "service_healthy", "redis": "service_healthy"}
    assert depends_on(services["worker"])["server"] == "service_healthy"
    assert "3000:3000" in services["server"]["ports"]
    volumes = " ".join(services["server"]["volumes"])
    assert "server-local-data:/app/packages/twenty-server/.local-storage" in volumes


def test_bridge_is_wired_to_twenty(services: dict[str, Any]) -> None:
    bridge = services["bridge"]
    env = environment(bridge)
    assert env["TWENTY_URL"] == "http://server:3000"
    deps = depends_on(bridge)
    assert deps["server"] == "service_healthy"
    assert deps["db"] == "service_healthy"
    assert bridge["build"]["dockerfile"] == "Dockerfile"
    assert any(str(p).split(":")[-1] == "8000" for p in bridge["ports"])
    assert bridge.get("restart") in ("always", "unless-stopped", "on-failure")


def test_bridge_database_is_its_own_on_the_db_service(services: dict[str, Any]) -> None:
    env = environment(services["bridge"])
    url = urlsplit(interpolate(env["DATABASE_URL"]))
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "db" and url.port == 5432
    bridge_db = url.path.lstrip("/")
    twenty_db = urlsplit(interpolate(environment(services["server"])["PG_DATABASE_URL"])).path.lstrip("/")
    assert bridge_db and bridge_db != twenty_db, "the bridge needs its own database"
    # Something creates that database before the bridge starts: a one-shot init service here.
    creators = [
        name
        for name, svc in services.items()
        if f"CREATE DATABASE {bridge_db}" in " ".join(map(str, svc.get("command") or []))
    ]
    assert creators, f"nothing creates the database {bridge_db}"
    for name in creators:
        assert depends_on(services["bridge"])[name] == "service_completed_successfully"
        assert depends_on(services[name])["db"] == "service_healthy"


def test_bridge_receives_every_deployment_setting(services: dict[str, Any]) -> None:
    env = environment(services["bridge"])
    missing = settings_variables() - NOT_FOR_DEPLOYMENT - set(env)
    assert not missing, f"bridge/config.py settings the bridge service does not pass: {sorted(missing)}"


def test_bridge_secrets_are_required_or_passed_through(services: dict[str, Any]) -> None:
    env = environment(services["bridge"])
    for name in ("BRIDGE_SECRET_KEY", "BRIDGE_ADMIN_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", env[name]), name
    # Never a secret written into the compose file itself.
    for name in ("TWENTY_API_KEY", "WHOP_API_KEY", "WHOP_CLIENT_SECRET", "WHOP_WEBHOOK_SECRET"):
        assert env[name] is None or VARIABLE.fullmatch(env[name]), name


def test_compose_defaults_match_the_bridge_defaults(services: dict[str, Any]) -> None:
    """A `${NAME:-default}` on the bridge must not silently change one of its settings' defaults."""
    fields = {(info.alias or name).upper(): info for name, info in Settings.model_fields.items()}
    for name, value in environment(services["bridge"]).items():
        if not isinstance(value, str) or name not in fields:
            continue
        match = VARIABLE.fullmatch(value)
        if match and match.group(1) == name and match.group(2) == ":-":
            assert str(fields[name].default) == match.group(3), name


def test_every_compose_variable_is_documented() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    # Variables passed through by name (`NAME:` with no value) are read from .env too.
    data = yaml.safe_load(text)
    for service in data["services"].values():
        used |= {name for name, value in environment(service).items() if value is None}
    documented = env_example_names(commented=True)
    assert used, "no variables found in the compose file"
    assert not used - documented, f"not in .env.example: {sorted(used - documented)}"


def test_env_example_documents_every_setting() -> None:
    documented = env_example_names(commented=True)
    missing = settings_variables() - documented
    assert not missing, f"bridge/config.py settings missing from .env.example: {sorted(missing)}"
    shown = env_example_names(commented=False)
    assert shown >= REQUIRED_IN_ENV_EXAMPLE, sorted(REQUIRED_IN_ENV_EXAMPLE - shown)


def test_env_example_holds_no_secret_values() -> None:
    secrets = {"APP_SECRET", "PG_DATABASE_PASSWORD", "TWENTY_API_KEY", "BRIDGE_SECRET_KEY", "BRIDGE_ADMIN_PASSWORD"}
    secrets |= {"WHOP_API_KEY", "WHOP_CLIENT_SECRET", "WHOP_WEBHOOK_SECRET"}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and match.group(1) in secrets:
            assert match.group(2) == "", f"{match.group(1)} must be empty in .env.example"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "openssl rand -base64 32" in text and "whop-twenty-bridge keygen" in text


def test_compose_and_env_example_without_rate_limit_overrides_by_default(services: dict[str, Any]) -> None:
    # The backfill overrides are documented but off: Twenty's default limit stays in force.
    assert not any(k.startswith("API_RATE_LIMITING_") for k in environment(services["server"]))
    assert "API_RATE_LIMITING_LONG_LIMIT" in COMPOSE.read_text(encoding="utf-8")


def test_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for service in services.values():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source
    assert {"db-data", "server-local-data"} <= declared


# Dockerfile --------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_dockerfile_base_image_and_entrypoint() -> None:
    stage = final_stage()
    assert stage[0][1].split()[0] == "python:3.11-slim"
    cmds = [args for name, args in stage if name == "CMD"]
    assert cmds, "no CMD"
    cmd = yaml.safe_load(cmds[-1])  # the exec form is a JSON array
    assert cmd[:2] == ["whop-twenty-bridge", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == "8000"
    assert ("EXPOSE", "8000") in stage


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for name, args in final_stage() if name == "USER"]
    assert users, "the image must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user


def test_dockerfile_installs_the_package_and_keeps_state_in_a_volume() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert "pip install" in runs and " ." in runs
    stage = final_stage()
    assert any(name == "VOLUME" and "/data" in args for name, args in stage)
    env = " ".join(args for name, args in stage if name == "ENV")
    assert "DATABASE_URL=sqlite:////data/" in env


def test_dockerfile_healthcheck_uses_python_not_curl() -> None:
    checks = [args for name, args in final_stage() if name == "HEALTHCHECK"]
    assert checks
    assert "/healthz" in checks[-1] and "urllib" in checks[-1] and "curl" not in checks[-1]


def test_dockerfile_copies_what_the_wheel_needs() -> None:
    copied = " ".join(args for name, args in dockerfile_instructions() if name == "COPY")
    for needed in ("pyproject.toml", "README.md", "schema", "bridge"):
        assert needed in copied, needed


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.db", ".env", ".git"):
        assert pattern in patterns, pattern
    for needed in ("README.md", "bridge", "schema", "pyproject.toml"):
        assert needed not in patterns, f"{needed} is needed by the image build"


def test_healthcheck_command_is_valid_python(services: dict[str, Any]) -> None:
    test = services["bridge"]["healthcheck"]["test"]
    code = test[test.index("-c") + 1]
    compile(code, "<healthcheck>", "exec")
    hc = [args for name, args in final_stage() if name == "HEALTHCHECK"][-1]
    exec_form = yaml.safe_load(hc[hc.index("CMD") + 3 :].strip())
    compile(exec_form[exec_form.index("-c") + 1], "<HEALTHCHECK>", "exec")


def test_init_command_is_valid_shell(services: dict[str, Any]) -> None:
    command = services["bridge-db-init"]["command"]
    assert command[:2] == ["sh", "-c"]
    words = shlex.split(command[2])
    assert "||" in words and "psql" in words


def test_the_bridge_runs_as_a_web_role_and_a_worker_role_on_one_configuration(services: dict[str, Any]) -> None:
    web, worker = services["bridge"], services["bridge-worker"]
    assert web["command"][-2:] == ["--role", "web"] and worker["command"][-2:] == ["--role", "worker"]
    assert environment(worker) == environment(web), "both roles must see the same database and Twenty"
    assert worker["image"] == web["image"] and worker.get("healthcheck")
    assert "ports" not in worker, "only the web role is reached from outside"
