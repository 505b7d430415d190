"""``hyperq dashboard``: serve the live dashboard of a MongoDB job store or a trials file."""
from __future__ import annotations

import logging
import os

import click

from hyperq.ops.cli_common import fail
from hyperq.ops.connection import URI_ENVVARS, open_store
from hyperq.ops.errors import EXIT_USAGE, OpsError

from .security import TOKEN_ENV, InsecureBind, check_bind

log = logging.getLogger(__name__)

__all__ = ["dashboard_command"]


def _need_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise OpsError("the dashboard needs its extra: pip install 'hyperq[dashboard]'",
                       EXIT_USAGE) from None


@click.command("dashboard")
@click.option("--mongo", "mongo", envvar=list(URI_ENVVARS), metavar="URI", default=None,
              help=f"Job store to watch, e.g. mongodb://USER:PASS@HOST:27017/DB "
                   f"[env {URI_ENVVARS[0]}].")
@click.option("--trials-file", type=click.Path(dir_okay=False), default=None,
              help="Watch the file fmin(trials_save_file=...) writes instead (a pickle: only "
                   "open files you trust).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but localhost needs --token.")
@click.option("--port", default=8050, show_default=True, type=int, help="Port to listen on.")
@click.option("--token", envvar=TOKEN_ENV, default=None,
              help=f"Password for the dashboard; enables re-queue and cancel. [env {TOKEN_ENV}]")
@click.option("--secret", envvar="HYPERQ_SECRET", default=None,
              help="The experiments' HMAC secret: only with it is the stored domain (signed) "
                   "unpickled, to show parameters as the objective saw them. [env HYPERQ_SECRET]")
@click.option("--timeout", type=float, default=5.0, show_default=True,
              help="Seconds to wait for the MongoDB server at start.")
def dashboard_command(mongo: str | None, trials_file: str | None, host: str, port: int,
                      token: str | None, secret: str | None, timeout: float) -> None:
    """Serve a live dashboard: experiments, trials, curves, parameters, workers, actions."""
    try:
        _need_extra()
        if bool(mongo) == bool(trials_file):
            # --trials-file wins over a URI that only came from the environment
            if trials_file and mongo and any(os.environ.get(v) == mongo for v in URI_ENVVARS):
                mongo = None
            else:
                raise OpsError("give either --mongo URI or --trials-file PATH", EXIT_USAGE)
        try:
            check_bind(host, token)
        except InsecureBind as exc:
            raise OpsError(str(exc), EXIT_USAGE) from None
        from .sources import FileSource, MongoSource

        if trials_file:
            try:
                source = FileSource(trials_file)
            except FileNotFoundError as exc:
                raise OpsError(str(exc), EXIT_USAGE) from None
        else:
            from hyperq.mongo.signing import resolve_secret

            source = MongoSource(open_store(mongo, timeout=timeout),
                                 secret=resolve_secret(secret) if secret else None)
    except OpsError as err:
        fail(err)
        return
    import uvicorn

    from .app import create_app

    app = create_app(source, token=token)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"hyperq dashboard for {source.description} on http://{shown}:{port}/ "
               f"({'actions on: sign in with the token' if token and source.can_act else 'read-only'})")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
