"""``ProcessTrials``: evaluate trials in parallel in local worker processes, without any server.

::

    from hyperq import fmin, tpe, ProcessTrials
    best = fmin(objective, space, algo=tpe.suggest, max_evals=200,
                trials=ProcessTrials(n_jobs=4))

Each worker is a fresh Python interpreter (``sys.executable``) started with ``subprocess``:
nothing is forked from the driver and the user's script is not re-imported, so no
``if __name__ == "__main__"`` guard is needed and it works from notebooks. The objective and the
space are cloudpickled once per fmin call and loaded once per worker; each trial then costs one
small message each way over a pipe.

A worker that dies while evaluating a trial (``os._exit``, a segfault in native code, SIGKILL
from the out-of-memory killer) turns that trial into an ERROR trial that says how it died, and a
fresh worker takes its place. When fmin stops early (timeout, loss_threshold, early_stop_fn) the
queued trials are cancelled and running ones are terminated; when fmin returns or raises, every
worker has exited. Trials still running when fmin raises (e.g. Ctrl-C) go back to NEW, so a
resumed run (``trials_save_file``) evaluates them again.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any

import cloudpickle

from hyperq._parallel import DispatchTrials, error_outcome, evaluate_outcome
from hyperq.exceptions import InvalidArgument, WorkerCrashed

logger = logging.getLogger(__name__)

__all__ = ["ProcessTrials"]

_TERM_GRACE = 2.0  # seconds a terminated worker gets before SIGKILL


def _death_reason(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering (its pipe closed) and was killed"
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGSEGV:
            return f"crashed with a segmentation fault ({name}) in native code"
        if sig == signal.SIGKILL:
            return (f"was killed by {name}; the out-of-memory killer does this when the "
                    "machine runs out of memory")
        return f"was killed by {name}"
    return (f"exited with code {returncode} (os._exit or sys.exit in the objective, or the "
            "interpreter aborted; see the worker's output above)")


class _Worker:
    """One worker process and its two pipe ends."""

    def __init__(self, init: bytes) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        code = "from hyperq.process import _worker_main; _worker_main(%d, %d)" % (
            to_child_r, from_child_w)
        try:
            self.popen = subprocess.Popen([sys.executable, "-c", code],
                                          pass_fds=(to_child_r, from_child_w), close_fds=True)
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)
        self.tid: int | None = None
        self.send.send_bytes(init)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def run(self, tid: int, vals: dict[str, Any], history: Any = None) -> None:
        self.send.send_bytes(cloudpickle.dumps(("trial", tid, vals, history)))
        self.tid = tid

    def kill(self, grace: float = _TERM_GRACE) -> int | None:
        """Terminate (SIGTERM, then SIGKILL after ``grace`` s), close the pipes, reap."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.close()
        return self.popen.wait()

    def close(self) -> None:
        for conn in (self.send, self.recv):
            try:
                conn.close()
            except OSError:
                pass


class ProcessTrials(DispatchTrials):
    """Trials evaluated in parallel by ``n_jobs`` local worker processes.

    Args:
        n_jobs: how many trials run at once, one worker process each (default, or -1: the
            number of CPUs).
        exp_key: an experiment key, as for :class:`~hyperq.Trials`.

    Use it like :class:`~hyperq.Trials`: ``fmin(..., trials=ProcessTrials(n_jobs=4))``. The
    objective must be picklable with cloudpickle (lambdas and closures are fine; open files,
    locks and connections are not: create those inside the objective). POSIX only.
    """

    _RUNTIME_ATTRS = DispatchTrials._RUNTIME_ATTRS + ("_workers", "_tmpdir")

    def __init__(self, n_jobs: int | None = None, exp_key: str | None = None,
                 refresh: bool = True) -> None:
        if os.name != "posix":
            raise InvalidArgument("ProcessTrials needs a POSIX system (Linux, macOS); on "
                                  "Windows use hyperq.Trials or SparkTrials")
        if n_jobs is None or n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise InvalidArgument(f"n_jobs must be a positive int (or -1 for all CPUs), "
                                  f"got {n_jobs!r}")
        self.n_jobs = n_jobs
        super().__init__(exp_key=exp_key, refresh=refresh)

    def _reset_runtime(self) -> None:
        super()._reset_runtime()
        self._workers: list[_Worker] = []
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    @property
    def slots(self) -> int:
        return self.n_jobs

    def _init_message(self) -> bytes:
        assert self._tmpdir is not None
        path = os.path.join(self._tmpdir.name, f"domain-{self._domain_key}.pkl")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(self._domain_blob or b"")
        return cloudpickle.dumps(("init", list(sys.path), path, self._domain_key, self._exp_key))

    def _start_runtime(self) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="hyperq-proc-")
        try:
            for _ in range(self.n_jobs):
                self._spawn()
        except BaseException:
            self._stop_runtime()
            raise
        logger.debug("started %d worker processes: %s", len(self._workers),
                     [w.pid for w in self._workers])

    def _spawn(self) -> _Worker:
        worker = _Worker(self._init_message())
        self._workers.append(worker)
        return worker

    def _discard(self, worker: _Worker, grace: float) -> str:
        """Kill ``worker``, drop it from the pool; returns how it died."""
        self._workers.remove(worker)
        return _death_reason(worker.kill(grace=grace))

    def _launch(self, trial: dict[str, Any]) -> None:
        worker = next((w for w in self._workers if w.tid is None), None) or self._spawn()
        history = self._pruning_history()
        try:
            worker.run(trial["tid"], trial["misc"]["vals"], history)
        except OSError:  # it died while idle: start another one and retry once
            logger.warning("worker process %d %s; starting a new one", worker.pid,
                           self._discard(worker, grace=0.5))
            self._spawn().run(trial["tid"], trial["misc"]["vals"], history)

    def _collect(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        busy = {w.recv: w for w in self._workers if w.tid is not None}
        if not busy:
            return []
        done = []
        for conn in wait(list(busy), timeout):
            worker = busy[conn]
            tid = worker.tid
            assert tid is not None
            try:
                outcome = cloudpickle.loads(conn.recv_bytes())
                while isinstance(outcome, tuple):  # ("report", item): the trial goes on
                    self._on_report(tid, outcome[1])
                    if not conn.poll(0):
                        break
                    outcome = cloudpickle.loads(conn.recv_bytes())
                if isinstance(outcome, tuple):
                    continue
            except (EOFError, OSError):
                reason = self._discard(worker, grace=0.5)
                msg = f"the worker process (pid {worker.pid}) {reason} while evaluating this trial"
                logger.warning("worker process %d died; a new one takes its place", worker.pid)
                outcome = error_outcome(str(WorkerCrashed), msg,
                                        owner=f"{socket.gethostname()}:{worker.pid}")
                self._spawn()  # warms up while the driver goes on
            else:
                worker.tid = None
            done.append((tid, outcome))
        return done

    def _abort(self, tids: list[int]) -> None:
        doomed = [w for w in self._workers if w.tid in set(tids)]
        for w in doomed:
            if w.popen.poll() is None:
                w.popen.terminate()
        deadline = time.monotonic() + _TERM_GRACE
        for w in doomed:
            self._discard(w, grace=max(0.0, deadline - time.monotonic()))
            logger.info("terminated worker process %d (its trial %s was cancelled)", w.pid, w.tid)

    def _stop_runtime(self) -> None:
        workers, self._workers = self._workers, []
        for w in workers:  # ask idle ones to exit, terminate busy ones
            try:
                if w.tid is None:
                    w.send.send_bytes(cloudpickle.dumps(("stop",)))
                else:
                    w.popen.terminate()
            except OSError:
                pass
            w.close()
        deadline = time.monotonic() + _TERM_GRACE
        for w in workers:
            try:
                w.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.popen.kill()
                w.popen.wait()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


# -- the worker process ---------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Exit if the driver disappears (killed), even in the middle of a long objective."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(70)


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Loop of a worker process: load the domain once, then evaluate trials until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    domain: Any = None
    load_error: tuple[str, str] | None = None
    exp_key = None
    while True:
        try:
            msg = cloudpickle.loads(inbox.recv_bytes())
        except EOFError:
            return
        if msg[0] == "stop":
            return
        if msg[0] == "init":
            _, path, domain_path, _key, exp_key = msg
            sys.path[:] = path
            try:
                with open(domain_path, "rb") as f:
                    domain = cloudpickle.load(f)
                load_error = None
            except Exception as exc:
                load_error = (str(type(exc)), f"the worker process could not load the "
                              f"objective and search space: {exc}; make sure the modules they "
                              "use are importable (installed, or on sys.path)")
            continue
        _, tid, vals, history = msg
        if load_error is not None:
            outbox.send_bytes(cloudpickle.dumps(error_outcome(*load_error)))
            continue

        def send_report(item: dict[str, Any]) -> None:
            outbox.send_bytes(cloudpickle.dumps(("report", item)))

        outbox.send_bytes(evaluate_outcome(domain, tid, vals, exp_key, history, send_report))
