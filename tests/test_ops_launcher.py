"""The launch scripts start, scale and stop real workers (on this machine, and on "hosts" over
a stand-in for ssh), and a stop hands the running trial back through the exec'ing entrypoint."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from mongo_server import (  # noqa: F401  (fixtures)
    TESTS_DIR,
    hang_first_time,
    mongo_base_uri,
    mongo_uri,
    wait_until,
)

from hyperq import JOB_STATE_DONE, JOB_STATE_NEW, fmin, hp, rand
from hyperq.cli import main
from hyperq.mongo.trials import MongoTrials

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(150)]

REPO = TESTS_DIR.parent
LOCAL = REPO / "scripts" / "local-workers.sh"
CLUSTER = REPO / "scripts" / "cluster-workers.sh"

FAKE_SSH = """#!/bin/bash
# stand-in for ssh: "ssh [-o X] HOST COMMAND" runs COMMAND here with HOME=$FAKE_SSH_ROOT/HOST
while [[ "$1" == -* ]]; do shift 2; done
host="$1"; shift
mkdir -p "$FAKE_SSH_ROOT/$host"
HOME="$FAKE_SSH_ROOT/$host" exec bash -c "$*"
"""


def launcher_env(uri: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERQ_")}
    env.update({
        "HYPERQ_MONGO_URI": uri,
        "HYPERQ_RUN_DIR": str(tmp_path / "run"),
        "HYPERQ_WORKER_ARGS": "--heartbeat 0.2 --lease 5 --poll-interval 0.02",
        "HYPERQ_START_CHECK": "0.3",
        "HYPERQ_STOP_TIMEOUT": "20",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        # the worker runs with the Python that runs the tests, whatever PATH holds
        "HYPERQ_PYTHON": sys.executable,
    })
    env.update(extra)
    return env


def sh(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True,
                          timeout=90, check=False)


def registry(uri: str) -> dict[int, dict]:
    """``{pid: worker}`` as `hyperq workers --json` reports them."""
    out = CliRunner().invoke(main, ["workers", "--json", "--mongo", uri])
    assert out.exit_code == 0, out.output
    return {w["pid"]: w for w in json.loads(out.stdout)["workers"]}


def registered(uri: str, expected: set[int]) -> dict[int, dict]:
    """The registry once every pid in ``expected`` has registered."""
    def ready():
        workers = registry(uri)
        return workers if expected <= set(workers) else None

    return wait_until(ready, 30, f"workers {sorted(expected)} to register")


def pids(run_dir: Path) -> set[int]:
    return {int(p.read_text()) for p in run_dir.glob("worker-*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # no zombie


def test_local_launcher_starts_scales_and_stops_workers(mongo_uri, tmp_path):  # noqa: F811
    env = launcher_env(mongo_uri, tmp_path, HYPERQ_EXP_KEY="launch")
    run_dir = tmp_path / "run"
    try:
        out = sh(LOCAL, "start", "3", env=env)
        assert out.returncode == 0, out.stderr
        assert f"worker command: {sys.executable} -m hyperq worker (found by HYPERQ_PYTHON)" \
            in out.stdout
        assert out.stdout.count("started worker") == 3
        started = pids(run_dir)
        assert len(started) == 3
        workers = registered(mongo_uri, started)
        assert {workers[p]["status"] for p in started} == {"alive"}
        assert {workers[p]["serves"] for p in started} == {"launch"}, "HYPERQ_EXP_KEY applied"

        status = sh(LOCAL, "status", env=env)
        assert status.returncode == 0 and "3 worker(s) running" in status.stdout

        out = sh(LOCAL, "scale", "1", env=env)
        assert out.returncode == 0, out.stderr
        assert "stopped worker 3" in out.stdout and "stopped worker 2" in out.stdout
        assert "1 worker(s) running" in out.stdout
        left = pids(run_dir)
        assert len(left) == 1
        gone = started - left
        assert not any(alive(p) for p in gone)
        workers = registry(mongo_uri)
        assert {workers[p]["status"] for p in gone} == {"stopped"}, "clean exit on SIGTERM"

        out = sh(LOCAL, "scale", "2", env=env)
        assert "started worker 2" in out.stdout and "2 worker(s) running" in out.stdout
    finally:
        out = sh(LOCAL, "stop", env=env)
    assert out.returncode == 0 and "0 worker(s) running" in out.stdout
    assert not pids(run_dir)
    status = sh(LOCAL, "status", env=env)
    assert status.returncode == 1 and "0 worker(s) running" in status.stdout


def test_local_launcher_reports_a_worker_that_dies_at_once(tmp_path):
    env = launcher_env("not a uri", tmp_path, HYPERQ_START_CHECK="4")
    out = sh(LOCAL, "start", "1", env=env)
    assert out.returncode == 1
    assert "worker 1 exited at once" in out.stderr and "--mongo" in out.stderr
    missing = launcher_env("", tmp_path)
    out = sh(LOCAL, "start", "1", env=missing)
    assert out.returncode == 2 and "set HYPERQ_MONGO_URI" in out.stderr


def test_stop_hands_the_running_trial_back(mongo_uri, tmp_path):  # noqa: F811
    marker = tmp_path / "marker"
    env = launcher_env(mongo_uri, tmp_path, HYPERQ_EXP_KEY="handback",
                       HYPERQ_TEST_MARKER=str(marker))
    box: dict = {}
    trials = MongoTrials(mongo_uri, exp_key="handback")

    def drive():
        box["best"] = fmin(hang_first_time, {"x": hp.uniform("x", 0, 1)}, algo=rand.suggest,
                           max_evals=1, trials=trials, show_progressbar=False)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        assert sh(LOCAL, "start", "1", env=env).returncode == 0
        wait_until(lambda: marker.exists() and marker.read_text(), 60,
                   "the worker to start the trial")
        (pid,) = pids(tmp_path / "run")
        assert int(marker.read_text().split()[0]) == pid, "the pid file names the worker itself"
        out = sh(LOCAL, "stop", env=env)
        assert out.returncode == 0 and "ignored SIGTERM" not in out.stderr
        doc = MongoTrials(mongo_uri, exp_key="handback").trials[0]
        assert doc["state"] == JOB_STATE_NEW and doc["attempt"] == 0
        log = (tmp_path / "run" / "worker-1.log").read_text()
        assert "handed back to the queue" in log
        assert sh(LOCAL, "start", "1", env=env).returncode == 0
        thread.join(60)
        assert "best" in box
        doc = MongoTrials(mongo_uri, exp_key="handback").trials[0]
        assert doc["state"] == JOB_STATE_DONE and doc["attempt"] == 1
    finally:
        sh(LOCAL, "stop", env=env)


def test_cluster_launcher_over_ssh(mongo_uri, tmp_path):  # noqa: F811
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(FAKE_SSH)
    fake_ssh.chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("node-a\n# a comment\nuser@node-b   \n\n")
    root = tmp_path / "hosts-home"
    env = launcher_env(mongo_uri, tmp_path, HYPERQ_EXP_KEY="spread out",
                       HYPERQ_SSH=f"{fake_ssh} -o BatchMode=yes", FAKE_SSH_ROOT=str(root))
    del env["HYPERQ_RUN_DIR"]  # each "host" uses its own ~/.hyperq/workers
    try:
        out = sh(CLUSTER, str(hosts), "scale", "3", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "[node-a] 2 worker(s) running" in out.stdout
        assert "[user@node-b] 1 worker(s) running" in out.stdout
        assert (root / "node-a" / ".hyperq" / "workers" / "entrypoint.sh").exists()
        started = pids(root / "node-a" / ".hyperq" / "workers") | \
            pids(root / "user@node-b" / ".hyperq" / "workers")
        workers = registered(mongo_uri, started)
        assert {workers[p]["serves"] for p in started} == {"spread out"}
        status = sh(CLUSTER, str(hosts), "status", env=env)
        assert status.returncode == 0 and status.stdout.count("worker(s) running") == 2
    finally:
        out = sh(CLUSTER, str(hosts), "stop", env=env)
    assert out.returncode == 0
    assert out.stdout.count("0 worker(s) running") == 2
    assert not any(alive(p) for p in started)


# -- which worker command the entrypoint runs -------------------------------------------------
MINIMAL_PATH = "/usr/bin:/bin"  # what a shell without an activated venv has (no hyperq on it)


def checkout_copy(tmp_path: Path, with_venv: bool) -> Path:
    """A copy of workers/entrypoint.sh in a checkout layout, with a stand-in .venv if asked."""
    root = tmp_path / "checkout"
    (root / "workers").mkdir(parents=True)
    entry = root / "workers" / "entrypoint.sh"
    shutil.copy(REPO / "workers" / "entrypoint.sh", entry)
    if with_venv:
        (root / ".venv" / "bin").mkdir(parents=True)
        fake = root / ".venv" / "bin" / "hyperq-worker"
        fake.write_text("#!/bin/sh\necho \"venv worker ran with: $*\"\n")
        fake.chmod(0o755)
    return entry


def run_entry(entry: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(entry), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": MINIMAL_PATH, "HOME": os.environ.get("HOME", "/"), **env})


def test_entrypoint_finds_the_checkouts_venv_without_an_activated_venv(tmp_path):
    entry = checkout_copy(tmp_path, with_venv=True)
    venv_worker = str((entry.parent.parent / ".venv" / "bin" / "hyperq-worker").resolve())
    which = run_entry(entry, "which")
    assert which.returncode == 0, which.stderr
    assert which.stdout.startswith(venv_worker) and "the venv beside" in which.stdout
    out = run_entry(entry, "--max-jobs", "1", HYPERQ_MONGO_URI="mongodb://db:27017/x")
    assert out.returncode == 0, out.stderr
    assert f"starting {venv_worker}" in out.stderr
    assert out.stdout.strip() == "venv worker ran with: --max-jobs 1"


def test_entrypoint_prefers_an_explicit_python_or_command(tmp_path):
    entry = checkout_copy(tmp_path, with_venv=True)
    which = run_entry(entry, "which", HYPERQ_PYTHON=sys.executable)
    assert which.stdout.strip() == (f"{sys.executable} -m hyperq worker "
                                    "(found by HYPERQ_PYTHON)")
    which = run_entry(entry, "which", HYPERQ_PYTHON=sys.executable,
                      HYPERQ_WORKER_CMD="/opt/tools/run-worker --flag")
    assert which.stdout.startswith("/opt/tools/run-worker --flag (found by the environment "
                                   "(HYPERQ_WORKER_CMD))")
    # the Python form really starts a worker: its --help comes from hyperq's worker command
    out = run_entry(entry, "--help", HYPERQ_PYTHON=sys.executable,
                    HYPERQ_MONGO_URI="mongodb://db:27017/x")
    assert out.returncode == 0, out.stderr
    assert "--exp-key" in out.stdout


def test_entrypoint_says_how_to_fix_a_missing_worker(tmp_path):
    entry = checkout_copy(tmp_path, with_venv=False)
    out = run_entry(entry, "which")
    assert out.returncode == 64
    assert "cannot find hyperq-worker" in out.stderr and "HYPERQ_PYTHON" in out.stderr
    out = run_entry(entry, "which", HYPERQ_PYTHON=str(tmp_path / "no-such-python"))
    assert out.returncode == 64 and "is not an executable Python" in out.stderr


def test_local_launcher_without_a_worker_command_fails_before_starting(tmp_path):
    env = {"PATH": MINIMAL_PATH, "HOME": str(tmp_path), "HYPERQ_MONGO_URI": "mongodb://db/x",
           "HYPERQ_ENTRYPOINT": str(checkout_copy(tmp_path, with_venv=False)),
           "HYPERQ_RUN_DIR": str(tmp_path / "run")}
    out = sh(LOCAL, "start", "2", env=env)
    assert out.returncode == 2
    assert "cannot find hyperq-worker" in out.stderr and "no worker command" in out.stderr
    assert not pids(tmp_path / "run")
