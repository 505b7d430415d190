"""The ``hyperq worker`` / ``hyperq-worker`` command."""
from __future__ import annotations

import logging
import sys

import click

from .signing import SECRET_ENV, resolve_secret
from .uri import InvalidMongoURI, parse_mongo_uri

__all__ = ["worker_command", "main"]


@click.command("worker")
@click.option("--mongo", "mongo", required=True, envvar=["HYPERQ_MONGO_URI", "HYPERQ_MONGO"],
              help="Job store: mongodb://[user:pass@]host[:port]/db[?opts], mongodb+srv://..., "
                   "mongo://host:port/db/collection or host:port/db. "
                   "[env HYPERQ_MONGO_URI or HYPERQ_MONGO]")
@click.option("--exp-key", default=None, envvar="HYPERQ_EXP_KEY",
              help="Serve only this experiment (default: every experiment in the collection). "
                   "[env HYPERQ_EXP_KEY]")
@click.option("--max-jobs", type=int, default=None, envvar="HYPERQ_MAX_JOBS",
              help="Exit after this many trials. [env HYPERQ_MAX_JOBS]")
@click.option("--idle-timeout", type=float, default=None, envvar="HYPERQ_IDLE_TIMEOUT",
              help="Exit after this many seconds without work (default: run until stopped).")
@click.option("--workdir", default=None, type=click.Path(file_okay=False),
              envvar="HYPERQ_WORKDIR",
              help="Directory to run objectives in (created if needed).")
@click.option("--poll-interval", type=float, default=0.005, show_default=True,
              envvar="HYPERQ_POLL_INTERVAL",
              help="Shortest sleep between this worker's checks for work when idle (seconds; "
                   "servers without change streams).")
@click.option("--fleet-rate", type=float, default=25.0, show_default=True,
              envvar="HYPERQ_FLEET_RATE",
              help="Checks for work per second shared by all idle workers of the collection "
                   "(servers without change streams).")
@click.option("--watch/--no-watch", default=True, show_default=True,
              help="Wait for work on a change stream when the server offers one.")
@click.option("--heartbeat", type=float, default=2.0, show_default=True,
              envvar="HYPERQ_HEARTBEAT",
              help="Seconds between lease heartbeats while a trial runs.")
@click.option("--lease", type=float, default=None, envvar="HYPERQ_LEASE",
              help="Seconds without heartbeat after which a trial is re-queued "
                   "(default: 10 heartbeats).")
@click.option("--secret", default=None, envvar=SECRET_ENV,
              help=f"Shared HMAC secret: refuse unsigned or altered domains. [env {SECRET_ENV}]")
@click.option("--reconnect-timeout", type=float, default=300.0, show_default=True,
              help="Give up after the server has been unreachable this long (seconds).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def worker_command(mongo: str, exp_key: str | None, max_jobs: int | None,
                   idle_timeout: float | None, workdir: str | None, poll_interval: float,
                   fleet_rate: float, watch: bool, heartbeat: float, lease: float | None, secret: str | None,
                   reconnect_timeout: float, log_level: str) -> None:
    """Evaluate trials queued in MongoDB by fmin(..., trials=MongoTrials(...))."""
    from .store import ANY_EXP, AuthenticationFailed, StoreUnavailable, connect_store
    from .worker import Worker, WorkerConfig

    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s hyperq-worker[%(process)d] %(message)s",
    )
    if heartbeat <= 0 or (lease is not None and lease <= heartbeat):
        raise click.BadParameter("need heartbeat > 0 and lease > heartbeat", param_hint="--lease")
    if fleet_rate <= 0:
        raise click.BadParameter("must be > 0", param_hint="--fleet-rate")
    try:
        target = parse_mongo_uri(mongo)
    except InvalidMongoURI as exc:
        raise click.BadParameter(str(exc), param_hint="--mongo") from None
    try:
        store = connect_store(target, reconnect_timeout=reconnect_timeout)
    except (AuthenticationFailed, StoreUnavailable) as exc:
        click.echo(f"hyperq-worker: error: {exc}", err=True)
        sys.exit(2)
    config = WorkerConfig(
        exp_key=ANY_EXP if exp_key is None else exp_key,
        max_jobs=max_jobs,
        idle_timeout=idle_timeout,
        workdir=workdir,
        poll_interval=poll_interval,
        fleet_rate=fleet_rate,
        watch=watch,
        heartbeat=heartbeat,
        lease=lease,
        secret=resolve_secret(secret),
    )
    worker = Worker(store, config)
    worker.install_signal_handlers()
    sys.exit(worker.run())


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m hyperq.mongo.cli --mongo URI ...``."""
    worker_command.main(args=argv, prog_name="hyperq-worker")


if __name__ == "__main__":
    main()
