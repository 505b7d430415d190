"""Operator commands that change an experiment: requeue, cancel, delete."""
from __future__ import annotations

import click

from hyperq.mongo.store import JOB_STATE_RUNNING

from . import actions, queries
from .cli_common import connect, echo_json, handle_errors, json_option, store_options
from .queries import exp_label

__all__ = ["cancel_command", "delete_command", "requeue_command"]


@click.command("requeue")
@click.argument("exp_key")
@click.option("--stale/--no-stale", default=True, show_default=True,
              help="Requeue RUNNING trials whose worker stopped heartbeating (expired lease); "
                   "those out of retries become ERROR.")
@click.option("--errors/--no-errors", default=True, show_default=True,
              help="Requeue ERROR trials with a fresh retry budget (the old error is kept in "
                   "misc.previous_errors).")
@click.option("--tid", "tids", type=int, multiple=True,
              help="Only these errored trials (repeat for several).")
@json_option
@store_options
@handle_errors
def requeue_command(exp_key: str, stale: bool, errors: bool, tids: tuple[int, ...],
                    as_json: bool, mongo: str | None, timeout: float) -> None:
    """Put stale (dead worker) and errored trials of EXP_KEY back in the queue."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    if tids:
        for tid in tids:
            queries.get_trial(store, key, tid)  # unknown tid: exit 5
    result = actions.requeue(store, key, stale=stale, errors=errors, tids=tids)
    if as_json:
        echo_json({"exp_key": key, **result.as_dict()})
        return
    parts = []
    if stale:
        parts.append(f"{result.stale_requeued} stale trial(s) requeued"
                     + (f", {result.stale_failed} out of retries marked error"
                        if result.stale_failed else ""))
    if errors:
        parts.append(f"{result.errors_requeued} errored trial(s) requeued")
    click.echo(f"{exp_label(key)!r}: " + "; ".join(parts or ["nothing to do"]))
    if result.errors_requeued:
        click.echo("note: a driver still running fmin sees their new results after it resumes "
                   "(run fmin again with the same exp_key)")


@click.command("cancel")
@click.argument("exp_key")
@json_option
@store_options
@handle_errors
def cancel_command(exp_key: str, as_json: bool, mongo: str | None, timeout: float) -> None:
    """Cancel the queued (NEW) trials of EXP_KEY; running trials finish."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    n = actions.cancel_queued(store, key)
    running = store.retry(lambda: store.jobs.count_documents(
        {"exp_key": key, "state": JOB_STATE_RUNNING}), "count running trials")
    if as_json:
        echo_json({"exp_key": key, "cancelled": n, "running": running})
        return
    click.echo(f"{exp_label(key)!r}: cancelled {n} queued trial(s); {running} running trial(s) "
               "will finish. A driver still running fmin queues new trials: stop it too.")


@click.command("delete")
@click.argument("exp_key")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@store_options
@handle_errors
def delete_command(exp_key: str, yes: bool, as_json: bool, mongo: str | None,
                   timeout: float) -> None:
    """Delete EXP_KEY: every trial, attachment and its stored domain. Cannot be undone."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    summary = queries.summarize(store, key)[0]
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n)
    if not yes:
        if summary.counts.get("running"):
            click.echo(f"warning: {summary.counts['running']} trial(s) are running; their "
                       "workers' results will be discarded", err=True)
        try:
            confirmed = click.confirm(f"Delete experiment {exp_label(key)!r} ({summary.total} "
                                      f"trials: {counts}) from {store.target.display}?", err=True)
        except click.Abort:  # no answer (end of input, Ctrl-C)
            click.echo("", err=True)
            confirmed = False
        if not confirmed:
            click.echo("aborted: nothing deleted", err=True)
            raise click.exceptions.Exit(1)
    deleted = actions.delete_experiment(store, key)
    if as_json:
        echo_json({"exp_key": key, "deleted": deleted})
        return
    click.echo(f"deleted {exp_label(key)!r}: {deleted['trials']} trial(s), "
               f"{deleted['domains']} stored domain(s)")
