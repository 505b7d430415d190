"""Start a MongoDB-protocol test server (mongoeco over TCP) for hyperq's tests and benchmarks.

Needs Python >= 3.13 with ``mongoeco[wire]`` installed (it is not a hyperq dependency)::

    python3.13 -m venv /tmp/mongoeco && /tmp/mongoeco/bin/pip install 'mongoeco[wire]'
    /tmp/mongoeco/bin/python scripts/mongo_test_server.py --port 27999 --dbpath /tmp/db &

The server listens on 127.0.0.1 only, keeps its data in ``--dbpath`` (SQLite) so that it can be
stopped and restarted with the same data, and prints ``READY <port>`` once it accepts
connections. ``--user``/``--password`` turn on SCRAM authentication (admin source, root role).
It stops cleanly on SIGTERM or SIGINT. This is a test tool, not a production database.

``--load DB.COLLECTION=FILE`` (repeatable) first inserts the documents of a BSON file (one
document after another, as ``mongodump`` writes them or ``bson.encode`` makes them) through
mongoeco's own bulk insert, then starts serving; a restore, not a client's write. It exists
because mongoeco's ``insert`` command over the wire checks each new document against every
stored one (about 20 documents/s at a few thousand, slower as the collection grows), while its
bulk insert loads 10,000 trial documents in about 12 s. Create indexes over the wire afterwards
(non-unique ones build in about a second per 10,000 documents; a unique compound index builds in
quadratic time there).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys


def _read_documents(file_name: str) -> list:
    """The documents of a BSON file, in order."""
    import bson

    with open(file_name, "rb") as fh:
        return list(bson.decode_file_iter(fh))


async def _load(path: str, loads: list[str]) -> None:
    """Bulk-insert each ``DB.COLLECTION=FILE`` of ``loads`` into the SQLite file at ``path``."""
    from mongoeco import AsyncMongoClient
    from mongoeco.engines.sqlite import SQLiteEngine

    async with AsyncMongoClient(engine=SQLiteEngine(path)) as client:
        for spec in loads:
            namespace, _, file_name = spec.partition("=")
            db_name, _, coll_name = namespace.partition(".")
            if not (db_name and coll_name and file_name):
                raise SystemExit(f"--load wants DB.COLLECTION=FILE, got {spec!r}")
            docs = _read_documents(file_name)
            for i in range(0, len(docs), 5000):
                await client[db_name][coll_name].insert_many(docs[i:i + 5000])
            print(f"LOADED {len(docs)} documents into {namespace}", flush=True)


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
    if args.load:
        await _load(os.path.join(args.dbpath, "data.sqlite3"), args.load)
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
    parser.add_argument("--load", action="append", default=[], metavar="DB.COLLECTION=FILE",
                        help="bulk-insert the documents of a BSON file before serving")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 13):
        parser.error("mongoeco needs Python >= 3.13; run this script with python3.13")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
