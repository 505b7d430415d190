"""Test helpers for the MongoDB backend: a MongoDB-protocol server over TCP, worker processes,
and objectives that workers can import (workers get this directory on PYTHONPATH).

The server comes from ``$HYPERQ_TEST_MONGO_URI`` (any real ``mongod`` works). When it is unset,
a private mongoeco server is started (``scripts/mongo_test_server.py``) with the Python named by
``$HYPERQ_TEST_MONGO_PYTHON``, or a venv in ``~/.cache/hyperq/mongoeco-venv`` built once from a
Python >= 3.13 found on this machine. Tests that must stop, restart or configure auth on the
server always start a private one. Each server gets its own free port and temp dir and is
stopped by PID.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
LAUNCHER = REPO / "scripts" / "mongo_test_server.py"
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hyperq" / "mongoeco-venv"
URI_ENV = "HYPERQ_TEST_MONGO_URI"
PYTHON_ENV = "HYPERQ_TEST_MONGO_PYTHON"

_why_no_python: str | None = None


def _has_mongoeco(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import mongoeco.wire"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _python313_candidates() -> list[str]:
    found = []
    for name in ("python3.13", "python3.14"):
        path = shutil.which(name)
        if path:
            found.append(path)
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        root = ""
    for base in filter(None, [root, str(Path.home() / ".pyenv")]):
        found += sorted(glob.glob(f"{base}/versions/3.1[3-9]*/bin/python3"))
    return found


def mongoeco_python() -> str | None:
    """A Python that can run the mongoeco test server, installing it once if needed."""
    global _why_no_python
    explicit = os.environ.get(PYTHON_ENV)
    if explicit:
        if _has_mongoeco(explicit):
            return explicit
        _why_no_python = f"${PYTHON_ENV}={explicit} cannot import mongoeco.wire"
        return None
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and _has_mongoeco(str(venv_python)):
        return str(venv_python)
    if _why_no_python:
        return None
    for base in _python313_candidates():
        try:
            subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True,
                           capture_output=True, timeout=120)
            subprocess.run([str(venv_python), "-m", "pip", "install", "-q", "mongoeco[wire]"],
                           check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            _why_no_python = f"could not install mongoeco[wire] with {base}: {exc}"
            continue
        if _has_mongoeco(str(venv_python)):
            return str(venv_python)
    _why_no_python = _why_no_python or (
        "no Python >= 3.13 found to run the mongoeco test server; set "
        f"${URI_ENV} to a MongoDB server or ${PYTHON_ENV} to a Python with mongoeco[wire]"
    )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MongoServer:
    """A private mongoeco server process: own port, own data dir, stopped by PID."""

    def __init__(self, python: str, dbpath: str, user: str | None = None,
                 password: str | None = None, load: list[str] | None = None) -> None:
        self.python, self.dbpath, self.user, self.password = python, dbpath, user, password
        self.load = list(load or [])  # DB.COLLECTION=BSON_FILE, bulk-loaded before serving
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(dbpath, "server.log")

    @property
    def uri(self) -> str:
        if not self.user:
            return f"mongodb://127.0.0.1:{self.port}/"
        # mongoeco does not advertise saslSupportedMechs, so name the mechanism it supports
        return (f"mongodb://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                "?authSource=admin&authMechanism=SCRAM-SHA-256")

    def start(self, timeout: float = 60.0) -> "MongoServer":
        args = [self.python, str(LAUNCHER), "--port", str(self.port), "--dbpath", self.dbpath]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        for spec in self.load:
            args += ["--load", spec]
        os.makedirs(self.dbpath, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"test server exited: {Path(self.log_path).read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._ping():
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"test server did not answer ping within {timeout} s")

    def _ping(self) -> bool:
        import pymongo

        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=2000)
        try:
            client.admin.command("ping")
            return True
        except Exception:
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def with_database(uri: str, database: str) -> str:
    """``uri`` pointing at ``database`` (options kept)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@pytest.fixture(scope="session")
def mongo_base_uri(tmp_path_factory):
    """The shared test server: ``$HYPERQ_TEST_MONGO_URI`` or a private mongoeco."""
    uri = os.environ.get(URI_ENV)
    if uri:
        yield uri
        return
    python = mongoeco_python()
    if python is None:
        pytest.skip(f"no MongoDB-protocol server: {_why_no_python}")
    server = MongoServer(python, str(tmp_path_factory.mktemp("mongo-shared"))).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def mongo_uri(mongo_base_uri, request):
    """A fresh database on the shared server for this test, dropped afterwards."""
    import pymongo

    name = "t_" + request.node.name[:30].strip("_[]").replace("[", "_") + "_" + uuid.uuid4().hex[:6]
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    yield with_database(mongo_base_uri, name)
    client = pymongo.MongoClient(mongo_base_uri, serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(name)
    except Exception:
        pass
    finally:
        client.close()


@pytest.fixture
def private_server(tmp_path):
    """Factory for private servers (restart and auth tests); skips if none can start."""
    python = mongoeco_python()
    if python is None:
        pytest.skip(f"no mongoeco server for this test: {_why_no_python}")
    servers: list[MongoServer] = []

    def make(**kwargs) -> MongoServer:
        dbpath = tempfile.mkdtemp(dir=tmp_path)
        server = MongoServer(python, dbpath, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def secantus_command() -> str | None:
    """The SecantusDB server command (a MongoDB-protocol server with change streams)."""
    here = Path(sys.executable).with_name("secantusd-py")
    return str(here) if here.exists() else shutil.which("secantusd-py")


@pytest.fixture
def change_stream_uri(tmp_path):
    """A private SecantusDB server (it presents itself as a one-member replica set, so it has
    change streams): its URI. Skips when ``secantusd-py`` is not installed."""
    import pymongo

    cmd = secantus_command()
    if cmd is None:
        pytest.skip("secantusd-py not installed (pip install secantusdb): no change-stream server")
    port = free_port()
    log = open(tmp_path / "secantus.log", "wb")
    proc = subprocess.Popen([cmd, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                             str(tmp_path / "secantus-data"), "--log-level", "WARNING"],
                            stdout=log, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "secantus.log").read_text()[-2000:])
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000,
                                         directConnection=True)
            try:
                client.admin.command("ping")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                client.close()
        yield f"mongodb://127.0.0.1:{port}/cs?directConnection=true"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


# -- worker processes ------------------------------------------------------------------------
def worker_cmd() -> list[str]:
    script = Path(sys.executable).with_name("hyperq-worker")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "hyperq.mongo.cli"]


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env.pop("HYPERQ_SECRET", None)
    env.update(extra)
    return env


class Workers:
    """Start ``hyperq-worker`` processes and always reap them, by PID."""

    FAST = ["--heartbeat", "0.2", "--lease", "1.5", "--poll-interval", "0.05"]

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, uri: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        n = len(self.procs)
        log = open(self.tmp_path / f"worker{n}.log", "wb")
        proc = subprocess.Popen(worker_cmd() + ["--mongo", uri, *self.FAST, *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env or worker_env())
        proc.log_path = self.tmp_path / f"worker{n}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


def read_eval_log(path: str) -> list[list[str]]:
    """The lines ``start|end PID X`` the test objectives append to ``$HYPERQ_TEST_LOG``, split."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [line.split() for line in fh if line.strip()]


def run_fmin_in_thread(**kwargs):
    """Run ``fmin(**kwargs)`` in a daemon thread; returns the thread and a box that receives
    ``result`` or ``error``."""
    import threading

    from hyperq import fmin

    box: dict = {}

    def target():
        try:
            box["result"] = fmin(show_progressbar=False, **kwargs)
        except BaseException as exc:  # surfaced by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- objectives imported by workers ----------------------------------------------------------
def record_and_square(params):
    """Append one line per evaluation to $HYPERQ_TEST_LOG, then return a quadratic loss."""
    x = params["x"]
    with open(os.environ["HYPERQ_TEST_LOG"], "a") as fh:
        fh.write(f"{os.getpid()} {x!r}\n")
    time.sleep(float(os.environ.get("HYPERQ_TEST_SLEEP", "0")))
    return (x - 1.0) ** 2


def record_finish(params):
    """Log ``start PID X`` and ``end PID X`` to $HYPERQ_TEST_LOG around a short random sleep."""
    import random

    x = params["x"]
    with open(os.environ["HYPERQ_TEST_LOG"], "a") as fh:
        fh.write(f"start {os.getpid()} {x!r}\n")
    time.sleep(random.uniform(0, float(os.environ.get("HYPERQ_TEST_SLEEP", "0"))))
    with open(os.environ["HYPERQ_TEST_LOG"], "a") as fh:
        fh.write(f"end {os.getpid()} {x!r}\n")
    return {"loss": (x - 1.0) ** 2, "status": "ok", "pid": os.getpid()}


def hang_first_time(params):
    """The first evaluation (anywhere) writes its pid to $HYPERQ_TEST_MARKER and hangs."""
    marker = os.environ["HYPERQ_TEST_MARKER"]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(marker + ".rerun", "a") as fh:
            fh.write(f"{os.getpid()} {params['x']!r}\n")
        return float(params["x"]) ** 2
    os.write(fd, f"{os.getpid()} {params['x']!r}".encode())
    os.close(fd)
    time.sleep(120)
    return 0.0


def misbehaving(params):
    """One behaviour per case: exceptions, NaN, non-numeric and oversized results, attachments."""
    case = params["case"]
    if case == "raise":
        raise ValueError("objective exploded on purpose")
    if case == "nan":
        return float("nan")
    if case == "string":
        return {"loss": "bad", "status": "ok"}
    if case == "big":
        return {"loss": 1.0, "status": "ok", "blob": "x" * (17 * 1024 * 1024)}
    if case == "attach":
        return {"loss": 2.0, "status": "ok", "attachments": {"blob": b"\x00" * 300_000}}
    return {"loss": 3.0, "status": "ok", "pid": os.getpid()}


if __name__ == "__main__":  # driver used by the restart test: URI EXP_KEY MAX_EVALS
    import logging

    logging.basicConfig(level=logging.INFO)
    from hyperq import fmin, hp, rand
    from hyperq.mongo.trials import MongoTrials

    uri, exp_key, max_evals = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fmin(record_and_square, {"x": hp.uniform("x", -5, 5)}, algo=rand.suggest,
         max_evals=max_evals, trials=MongoTrials(uri, exp_key=exp_key),
         show_progressbar=False)
    print("DRIVER DONE", flush=True)
