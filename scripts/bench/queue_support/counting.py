"""Run a hyperq or hyperopt process while counting the MongoDB commands it sends.

    python counting.py ROLE [ARGS...]

ROLE is ``hyperq-worker``, ``hyperopt-worker`` or ``hyperopt-driver``. Counts go to
``$HYPERQ_BENCH_COUNTS/ROLE-PID.jsonl``: one line ``{"t": unix time, "counts": {command: n}}``
per second and one at exit. Works with pymongo 3 and 4 (command monitoring; connection
handshakes and server monitoring are not commands and are not counted).
"""
import atexit
import collections
import json
import os
import sys
import threading
import time

from pymongo import monitoring


class CommandCounter(monitoring.CommandListener):
    """Counts started commands by name."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def started(self, event):
        with self.lock:
            self.counts[event.command_name] += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


def main():
    role, args = sys.argv[1], sys.argv[2:]
    counter = CommandCounter()
    monitoring.register(counter)
    path = os.path.join(os.environ["HYPERQ_BENCH_COUNTS"], f"{role}-{os.getpid()}.jsonl")

    def dump():
        with open(path, "a") as fh:
            fh.write(json.dumps({"t": time.time(), "counts": counter.snapshot()}) + "\n")

    def tick():
        while True:
            time.sleep(1.0)
            dump()

    atexit.register(dump)
    threading.Thread(target=tick, daemon=True).start()
    if role == "hyperq-worker":
        from hyperq.mongo.cli import main as worker_main

        worker_main(args)
    elif role == "hyperopt-worker":
        from hyperopt.mongoexp import main_worker

        sys.argv = ["hyperopt-mongo-worker"] + args
        sys.exit(main_worker())
    elif role == "hyperopt-driver":
        import hyperopt_driver

        hyperopt_driver.main(args)
    else:
        sys.exit(f"unknown role {role}")


if __name__ == "__main__":
    main()
