"""Deployment files: parsed and cross-checked (YAML, Dockerfile, systemd, Slurm, shell scripts),
linted where the linters are installed, and the worker entrypoint's mapping of HYPERQ_*
variables to hyperq-worker options."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
ENTRYPOINT = REPO / "workers" / "entrypoint.sh"
SHELL_SCRIPTS = [ENTRYPOINT, REPO / "scripts" / "local-workers.sh",
                 REPO / "scripts" / "cluster-workers.sh",
                 DEPLOY / "slurm" / "hyperq-workers.sbatch"]


def dev_tool(name: str) -> str:
    """A linter the dev extra installs, found beside this Python even when PATH lacks its venv.

    A missing one fails the test: the README's test command installs the dev extra, so a skip
    here would hide a check that should run."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    tool = shutil.which(name, path=path)
    if tool is None:
        pytest.fail(f"{name} is not installed beside {sys.executable} nor on PATH; it comes "
                    "with the dev extra: pip install -e '.[dev]'")
    return tool


def worker_options() -> set[str]:
    """Every option `hyperq-worker` accepts, read from the click command itself."""
    from hyperq.mongo.cli import worker_command

    return {opt for p in worker_command.params for opt in p.opts}


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# -- docker-compose ------------------------------------------------------------------------
def test_compose_runs_authenticated_mongo_and_scalable_workers():
    compose = load_all(DEPLOY / "compose" / "docker-compose.yml")[0]
    mongo, worker = compose["services"]["mongo"], compose["services"]["worker"]
    env = mongo["environment"]
    assert "MONGO_INITDB_ROOT_PASSWORD" in env and ":?" in env["MONGO_INITDB_ROOT_PASSWORD"], \
        "compose refuses to start without a root password"
    init_dir = mongo["volumes"][1].split(":")[0]
    assert (DEPLOY / "compose" / init_dir / "create-hyperq-user.js").exists()
    assert all(p.startswith("127.0.0.1:") for p in mongo["ports"]), "not exposed to the network"
    assert "container_name" not in worker, "container_name would break --scale"
    assert "ports" not in worker
    uri = worker["environment"]["HYPERQ_MONGO_URI"]
    assert re.match(r"mongodb://\$\{HYPERQ_DB_USER[^}]*\}:\$\{HYPERQ_DB_PASSWORD[^}]*\}@mongo:27017/"
                    r"hyperq\?authSource=hyperq&replicaSet=rs0$", uri)
    assert "HYPERQ_SECRET" in worker["environment"]
    assert worker["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert worker["stop_grace_period"] == "60s"
    build = worker["build"]
    assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).resolve() == \
        REPO / "workers" / "Dockerfile"
    # every variable the compose file reads is documented in env.example
    used = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose" / "docker-compose.yml").read_text()))
    example = (DEPLOY / "compose" / "env.example").read_text()
    assert used - {"MONGO_PORT", "HYPERQ_WORKER_IMAGE", "HYPERQ_LOG_LEVEL"} <= \
        set(re.findall(r"^(\w+)=", example, re.MULTILINE))


# -- Kubernetes ----------------------------------------------------------------------------
def test_kubernetes_manifests():
    k8s = DEPLOY / "k8s"
    kustomization = load_all(k8s / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (k8s / resource).exists(), resource
    deployment = load_all(k8s / "worker-deployment.yaml")[0]
    assert deployment["kind"] == "Deployment"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    secret = load_all(k8s / "secret.example.yaml")[0]
    for name in ("HYPERQ_MONGO_URI", "HYPERQ_SECRET"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert container["livenessProbe"]["exec"]["command"] == ["hyperq-worker-entrypoint", "health"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["HYPERQ_WORKDIR"]["value"] in mounts

    auth, scaled = load_all(k8s / "keda-scaledobject.yaml")
    assert auth["kind"] == "TriggerAuthentication"
    assert auth["spec"]["secretTargetRef"][0]["key"] == "HYPERQ_MONGO_URI"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "mongodb"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    import json

    query = json.loads(trigger["metadata"]["query"])
    assert query["state"] == {"$in": [0, 1]}, "queued and running trials (NEW=0, RUNNING=1)"
    assert query["exp_key"] == env["HYPERQ_EXP_KEY"]["value"]


def test_mongodb_runs_as_a_replica_set_in_compose_and_kubernetes():
    """Change streams and retryable writes need a replica set (issue 11)."""
    compose = load_all(DEPLOY / "compose" / "docker-compose.yml")[0]
    mongo, worker = compose["services"]["mongo"], compose["services"]["worker"]
    assert mongo["command"][:3] == ["mongod", "--replSet", "rs0"] and "--keyFile" in mongo["command"]
    assert (DEPLOY / "compose" / "mongo-rs-entrypoint.sh").exists()
    assert "rs.initiate" in mongo["healthcheck"]["test"][1]
    assert "replicaSet=rs0" in worker["environment"]["HYPERQ_MONGO_URI"]
    k8s = DEPLOY / "k8s"
    assert "mongodb-statefulset.yaml" in load_all(k8s / "kustomization.yaml")[0]["resources"]
    service, stateful = load_all(k8s / "mongodb-statefulset.yaml")
    assert service["spec"]["clusterIP"] == "None"
    container = stateful["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["--replSet", "rs0"]
    assert "rs.initiate" in container["readinessProbe"]["exec"]["command"][-1]
    secrets = load_all(k8s / "secret.example.yaml")
    assert "replicaSet=rs0" in secrets[0]["stringData"]["HYPERQ_MONGO_URI"]
    assert {"MONGO_INITDB_ROOT_PASSWORD", "keyfile"} <= set(secrets[1]["stringData"])


# -- Dockerfile ----------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "workers" / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_copies_existing_files_and_execs_the_entrypoint():
    instructions = dockerfile_instructions()
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    for word, rest in instructions:
        if word == "COPY":
            *sources, _dest = rest.split()
            for src in sources:
                src = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], src)
                assert (REPO / src).exists(), f"COPY {src}: not in the build context"
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry == ['["tini", "--", "hyperq-worker-entrypoint"]'], "exec form, signals reach it"
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    health = next(rest for word, rest in instructions if word == "HEALTHCHECK")
    assert health.endswith('CMD ["hyperq-worker-entrypoint", "health"]')
    user = [rest for word, rest in instructions if word == "USER"]
    assert user and not user[-1].startswith("0") and user[-1] != "root"
    assert os.access(ENTRYPOINT, os.X_OK)


def test_hadolint_dockerfile():
    hadolint = dev_tool("hadolint")
    out = subprocess.run([hadolint, str(REPO / "workers" / "Dockerfile")],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# -- systemd and Slurm ---------------------------------------------------------------------
def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_settings():
    unit = unit_settings(DEPLOY / "systemd" / "hyperq-worker@.service")
    assert unit["ExecStart"] == ["/usr/local/bin/hyperq-worker-entrypoint"]
    assert unit["KillSignal"] == ["SIGTERM"] and unit["KillMode"] == ["mixed"]
    assert int(unit["TimeoutStopSec"][0]) >= 30
    assert "3" in unit["RestartPreventExitStatus"][0].split(), "a refused domain is not retried"
    assert "%i" in unit["Environment"][0], "each instance gets its own work directory"
    example = (DEPLOY / "systemd" / "worker.env.example").read_text()
    assert re.search(r"^HYPERQ_MONGO_URI=mongodb://", example, re.MULTILINE)


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    text = (DEPLOY / "systemd" / "hyperq-worker@.service").read_text()
    # verify needs an instance name and an ExecStart that exists on this machine
    unit = tmp_path / "hyperq-worker@1.service"
    unit.write_text(text.replace("/usr/local/bin/hyperq-worker-entrypoint", str(ENTRYPOINT)))
    out = subprocess.run([tool, "verify", str(unit)], check=False, capture_output=True,
                         text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if "hyperq-worker@1.service" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_slurm_script_execs_the_entrypoint_and_requests_sigterm():
    text = (DEPLOY / "slurm" / "hyperq-workers.sbatch").read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, re.MULTILINE))
    assert re.fullmatch(r"\d+-\d+(%\d+)?", directives["array"])
    assert directives["signal"].startswith("B:TERM@"), "SIGTERM before the time limit"
    assert re.search(r'^exec "\$entrypoint"$', text, re.MULTILINE), \
        "the worker replaces the batch shell"
    out = subprocess.run(["bash", "-n", str(DEPLOY / "slurm" / "hyperq-workers.sbatch")],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# -- shell scripts -------------------------------------------------------------------------
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    shellcheck = dev_tool("shellcheck")
    out = subprocess.run([shellcheck, "--severity=style", str(script)], check=False,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


# -- the entrypoint ------------------------------------------------------------------------
@pytest.fixture
def stub_worker(tmp_path):
    """A fake hyperq-worker that prints its environment and one argument per line."""
    stub = tmp_path / "stub-worker"
    stub.write_text('#!/bin/sh\necho "MONGO=$HYPERQ_MONGO"\necho "URI=${HYPERQ_MONGO_URI-unset}"\n'
                    'echo "SECRET=${HYPERQ_SECRET-unset}"\nfor a in "$@"; do echo "ARG=$a"; done\n')
    stub.chmod(0o755)
    return stub


def run_entrypoint(stub, *args, **env):
    base = {"PATH": os.environ["PATH"], "HYPERQ_WORKER_BIN": str(stub), "HYPERQ_BIN": str(stub)}
    return subprocess.run([str(ENTRYPOINT), *args], env={**base, **env}, check=False,
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_maps_environment_to_worker_options(stub_worker, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file")
    out = run_entrypoint(
        stub_worker, "--max-jobs", "7", "--workdir", "/dir with space",
        HYPERQ_MONGO_URI="mongodb://u:p@db:27017/hyperq", HYPERQ_EXP_KEY="exp one",
        HYPERQ_MAX_JOBS="5", HYPERQ_IDLE_TIMEOUT="60", HYPERQ_SECRET_FILE=str(secret_file),
        HYPERQ_WORKER_ARGS="--heartbeat 1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["MONGO=mongodb://u:p@db:27017/hyperq", "URI=unset",
                         "SECRET=from-a-file"], "the URI goes by environment, not argv"
    args = [line[4:] for line in lines[3:]]
    assert args == ["--exp-key", "exp one", "--max-jobs", "5", "--idle-timeout", "60",
                    "--heartbeat", "1", "--max-jobs", "7", "--workdir", "/dir with space"]
    options = worker_options()
    assert {a for a in args if a.startswith("--")} <= options


def test_entrypoint_env_options_are_real_worker_options():
    text = ENTRYPOINT.read_text()
    mapped = re.findall(r"\b[A-Z_]+:(--[a-z-]+)", text)
    assert len(mapped) >= 9
    assert set(mapped) <= worker_options()


def test_entrypoint_errors_and_other_commands(stub_worker):
    out = run_entrypoint(stub_worker)
    assert out.returncode == 64 and "set HYPERQ_MONGO_URI" in out.stderr
    out = run_entrypoint(stub_worker, "echo", "hello")
    assert out.returncode == 0 and out.stdout == "hello\n"
    out = run_entrypoint(stub_worker, "health", "--strict", HYPERQ_MONGO_URI="mongodb://h/db")
    assert out.stdout.splitlines()[1:] == ["URI=mongodb://h/db", "SECRET=unset",
                                           "ARG=worker-health", "ARG=--strict"]
    out = run_entrypoint(stub_worker, "health")
    assert out.returncode == 1 and "unhealthy" in out.stderr
