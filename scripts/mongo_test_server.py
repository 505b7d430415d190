"""Start a MongoDB-protocol test server (mongoeco over TCP) for hyperq's tests and benchmarks.

Needs Python >= 3.13 with ``mongoeco[wire]`` installed (it is not a hyperq dependency)::

    python3.13 -m venv /tmp/mongoeco && /tmp/mongoeco/bin/pip install 'mongoeco[wire]'
    /tmp/mongoeco/bin/python scripts/mongo_test_server.py --port 27999 --dbpath /tmp/db &

The server listens on 127.0.0.1 only, keeps its data in ``--dbpath`` (SQLite) so that it can be
stopped and restarted with the same data, and prints ``READY <port>`` once it accepts
connections. ``--user``/``--password`` turn on SCRAM authentication (admin source, root role).
It stops cleanly on SIGTERM or SIGINT. This is a test tool, not a production database.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys


async def _serve(args: argparse.Namespace) -> None:
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer
    from mongoeco.wire.auth import WireAuthUser

    os.makedirs(args.dbpath, exist_ok=True)
    users: tuple = ()
    if args.user:
        users = (
            WireAuthUser(
                username=args.user,
                password=args.password,
                roles=({"role": "root", "db": "admin"},),
            ),
        )
    engine = SQLiteEngine(os.path.join(args.dbpath, "data.sqlite3"))
    server = AsyncMongoEcoProxyServer(
        engine=engine, host=args.host, port=args.port, auth_users=users
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = await server.start()
    if args.pidfile:
        with open(args.pidfile, "w") as fh:
            fh.write(str(os.getpid()))
    print(f"READY {address.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--dbpath", required=True, help="directory for the SQLite data file")
    parser.add_argument("--user", default=None, help="require SCRAM auth with this user")
    parser.add_argument("--password", default=None)
    parser.add_argument("--pidfile", default=None)
    args = parser.parse_args(argv)
    if sys.version_info < (3, 13):
        parser.error("mongoeco needs Python >= 3.13; run this script with python3.13")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
