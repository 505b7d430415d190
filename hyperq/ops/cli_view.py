"""Read-only operator commands: status, workers, best, trials, export, worker-health."""
from __future__ import annotations

import contextlib
import pprint
import signal
import socket
import sys
import threading
import time
from typing import Any

import click

from hyperq.mongo.signing import SECRET_ENV, resolve_secret
from hyperq.mongo.store import ANY_EXP, JobStore

from . import queries
from .cli_common import connect, echo_json, handle_errors, json_option, store_options
from .errors import EXIT_UNREACHABLE, NothingToShow, OpsError
from .output import (
    dumps,
    fmt_age,
    fmt_error,
    fmt_loss,
    fmt_time,
    fmt_values,
    table,
    write_csv,
    write_jsonl,
)
from .params import raw_values, trial_parameters
from .queries import STATE_CODES, exp_label, state_name

__all__ = [
    "best_command",
    "export_command",
    "status_command",
    "trials_command",
    "worker_health_command",
    "workers_command",
]

_STATE_CHOICE = click.Choice(list(STATE_CODES), case_sensitive=False)


# -- status ----------------------------------------------------------------------------------
def _status_text(store: JobStore, summaries: list[queries.ExperimentSummary],
                 n_live: int) -> str:
    head = f"{store.target.display}: {len(summaries)} experiment(s), {n_live} live worker(s)"
    if not summaries:
        return head + "\nno trials yet (queue some with fmin(..., trials=MongoTrials(...)))"
    rows = []
    now = store.server_time()
    for s in summaries:
        c = s.counts
        running = str(c.get("running", 0)) + (f" ({s.stale} stale)" if s.stale else "")
        since = (now - s.last_activity.replace(tzinfo=None)).total_seconds() \
            if s.last_activity else None
        rows.append([exp_label(s.exp_key), s.total, c.get("new", 0), running, c.get("done", 0),
                     c.get("error", 0), c.get("cancel", 0), fmt_loss(s.best_loss),
                     "-" if s.best_tid is None else s.best_tid, f"{s.trials_per_minute:.1f}",
                     s.live_workers, fmt_age(since) + (" ago" if since is not None else "")])
    return head + "\n" + table(
        ["EXP_KEY", "TOTAL", "NEW", "RUNNING", "DONE", "ERROR", "CANCEL", "BEST_LOSS",
         "BEST_TID", "TRIALS/MIN", "WORKERS", "LAST_ACTIVITY"], rows)


def _status_once(store: JobStore, exp_key: Any, window: float, as_json: bool) -> str:
    summaries = queries.summarize(store, exp_key, rate_window_s=window)
    n_live = len(store.retry(lambda: store.live_workers(ANY_EXP), "list live workers"))
    if as_json:
        return dumps({"server_time": store.server_time(), "live_workers": n_live,
                      "experiments": [s.as_dict() for s in summaries]},
                     indent=None)
    return _status_text(store, summaries, n_live)


@click.command("status")
@click.option("--exp-key", default=None, help="Show only this experiment.")
@click.option("--watch", is_flag=True, help="Refresh until interrupted (Ctrl-C).")
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--window", type=float, default=300.0, show_default=True,
              help="Seconds over which TRIALS/MIN is measured.")
@json_option
@store_options
@handle_errors
def status_command(exp_key: str | None, watch: bool, interval: float, window: float,
                   as_json: bool, mongo: str | None, timeout: float) -> None:
    """Per experiment: trials by state, best loss, trials per minute, live workers."""
    store = connect(mongo, timeout)
    key = ANY_EXP if exp_key is None else queries.resolve_exp_key(store, exp_key)
    if not watch:
        click.echo(_status_once(store, key, window, as_json))
        return
    with _ctrl_c_between_refreshes() as stop:
        while not stop.requested:
            try:
                text = _status_once(store, key, window, as_json)
            except OpsError:
                raise
            except Exception as exc:
                from .connection import translate_error

                err = translate_error(exc)
                if err.exit_code != EXIT_UNREACHABLE:
                    raise
                text = f"hyperq: {err} -- retrying every {interval:g} s"
            if not as_json and sys.stdout.isatty():
                click.clear()
            click.echo(text if as_json else f"{text}\n(every {interval:g} s, Ctrl-C to stop)")
            stop.sleep(interval)


class _Stop(Exception):
    pass


class _CtrlC:
    """Ctrl-C that ends a watch loop only while it sleeps: a KeyboardInterrupt raised inside a
    MongoDB call can leave the driver's locks held, and the process then hangs on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._sleeping = False

    def handle(self, _signum: int, _frame: Any) -> None:
        self.requested = True
        if self._sleeping:
            raise _Stop

    def sleep(self, seconds: float) -> None:
        if self.requested:
            return
        self._sleeping = True
        try:
            time.sleep(seconds)
        except _Stop:
            pass
        finally:
            self._sleeping = False


@contextlib.contextmanager
def _ctrl_c_between_refreshes():
    stop = _CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, stop.handle)
    try:
        yield stop
    except _Stop:
        pass  # Ctrl-C a moment after a sleep ended: stop all the same
    finally:
        signal.signal(signal.SIGINT, previous)


# -- workers ---------------------------------------------------------------------------------
@click.command("workers")
@click.option("--recent", type=float, default=3600.0, show_default=True,
              help="Also list workers lost or stopped within this many seconds.")
@json_option
@store_options
@handle_errors
def workers_command(recent: float, as_json: bool, mongo: str | None, timeout: float) -> None:
    """Live and recently lost workers: host, pid, current trial, last heartbeat."""
    store = connect(mongo, timeout)
    rows = queries.list_workers(store, recent_s=recent)
    if as_json:
        echo_json({"workers": [w.as_dict() for w in rows]})
        return
    counts = {s: sum(1 for w in rows if w.status == s) for s in ("alive", "lost", "stopped")}
    click.echo(f"{store.target.display}: {counts['alive']} alive, {counts['lost']} lost, "
               f"{counts['stopped']} stopped (last {fmt_age(recent)})")
    if not rows:
        click.echo("no workers (start some: hyperq-worker --mongo URI --exp-key KEY)")
        return
    click.echo(table(
        ["STATUS", "HOST", "PID", "SERVES", "CURRENT", "LAST_HEARTBEAT", "DONE", "ERROR", "ID"],
        [[w.status, w.host, w.pid, w.serves,
          f"{exp_label(w.current.get('exp_key'))}/{w.current.get('tid')}" if w.current else "-",
          fmt_age(w.heartbeat_age_s) + " ago", w.n_done, w.n_error, w.worker_id]
         for w in rows]))


# -- best ------------------------------------------------------------------------------------
@click.command("best")
@click.argument("exp_key")
@click.option("--raw", is_flag=True,
              help="Do not load the stored domain; show the raw sampled values only.")
@click.option("--secret", default=None, envvar=SECRET_ENV,
              help=f"HMAC secret: refuse to load an unsigned or altered domain. [env {SECRET_ENV}]")
@click.option("--trust-domain", is_flag=True,
              help="Load the stored domain without a secret (it is pickled code: only if you "
                   "trust everyone who can write the database).")
@json_option
@store_options
@handle_errors
def best_command(exp_key: str, raw: bool, secret: str | None, trust_domain: bool, as_json: bool,
                 mongo: str | None, timeout: float) -> None:
    """The best trial of EXP_KEY, with its parameters as the objective saw them."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    doc = queries.best_trial(store, key)
    if doc is None:
        counts = queries.summarize(store, key)[0].counts
        raise NothingToShow(
            f"experiment {exp_label(key)!r} has no successful trial yet ("
            + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")")
    params = trial_parameters(store, doc, resolve_secret(secret), load_domain=not raw,
                              trust_domain=trust_domain)
    if as_json:
        echo_json({"exp_key": key, "tid": doc.get("tid"), "loss": doc["result"].get("loss"),
                   "result": doc.get("result"), "values": params.values,
                   "parameters": params.evaluated if params.ok else None,
                   "parameters_error": params.error})
        return
    click.echo(f"best trial of {exp_label(key)!r}: tid {doc.get('tid')}, "
               f"loss {fmt_loss(doc['result'].get('loss'))}")
    click.echo(f"  finished {fmt_time(doc.get('refresh_time'))} on {doc.get('worker') or '-'} "
               f"(attempt {doc.get('attempt', '-')})")
    extra = {k: v for k, v in doc["result"].items() if k not in ("loss", "status")}
    if extra:
        click.echo("  result: " + dumps(extra, indent=None))
    if params.ok:
        click.echo("parameters (as the objective saw them):")
        click.echo("  " + pprint.pformat(params.evaluated, width=96).replace("\n", "\n  "))
    else:
        click.echo(f"raw values only -- {params.error}:")
        for label, value in sorted(params.values.items()):
            click.echo(f"  {label} = {value!r}")


# -- trials ----------------------------------------------------------------------------------
def _trial_detail(doc: dict[str, Any]) -> str:
    result = doc.get("result") or {}
    misc = doc.get("misc") or {}
    lines = [
        f"trial {doc.get('tid')} of {exp_label(doc.get('exp_key'))!r}",
        f"  state     {state_name(doc.get('state'))}",
        f"  status    {result.get('status', '-')}",
        f"  loss      {fmt_loss(result.get('loss'))}",
        f"  attempt   {doc.get('attempt', '-')} of {doc.get('max_attempts', '-')}"
        + (f", requeued {doc['requeues']} time(s)" if doc.get("requeues") else ""),
        f"  worker    {doc.get('worker') or doc.get('owner') or '-'}",
        f"  booked    {fmt_time(doc.get('book_time'))}",
        f"  updated   {fmt_time(doc.get('refresh_time'))}",
        "  values    " + (fmt_values(raw_values(doc), width=400) or "-"),
    ]
    other = {k: v for k, v in result.items() if k not in ("status", "loss")}
    if other:
        lines.append("  result    " + dumps(other, indent=None))
    if misc.get("error"):
        lines.append("error: " + fmt_error(misc["error"]))
    if misc.get("traceback"):
        lines.append("traceback:\n" + str(misc["traceback"]).rstrip())
    for i, prev in enumerate(misc.get("previous_errors") or [], 1):
        lines.append(f"previous error {i}: {fmt_error(prev.get('error'))}")
    for refusal in doc.get("refusals") or []:
        lines.append(f"refused by {refusal.get('worker')}: {refusal.get('reason')}")
    lines.extend(_reports_lines(doc.get("intermediate") or []))
    return "\n".join(lines)


def _reports_lines(items: list[dict[str, Any]], limit: int = 40) -> list[str]:
    """The intermediate reports of a trial (issue 14), the first and last ones if many."""
    if not items:
        return []
    shown = items if len(items) <= limit else items[:limit // 2] + [None] + items[-limit // 2:]
    lines = [f"reports ({len(items)}):"]
    for item in shown:
        if item is None:
            lines.append(f"  ... {len(items) - 2 * (limit // 2)} more")
            continue
        rung = f"  rung {item['rung']}" if item.get("rung") is not None else ""
        lines.append(f"  step {item.get('step'):>6}  {fmt_loss(item.get('value'))}"
                     f"  {fmt_time(item.get('time'))}{rung}")
    return lines


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "lease_token")}


@click.command("trials")
@click.argument("exp_key")
@click.option("--state", "states", multiple=True, type=_STATE_CHOICE,
              help="Only trials in this state (repeat for several).")
@click.option("--tid", type=int, default=None,
              help="Show this one trial in full, with its error and traceback.")
@click.option("--limit", type=int, default=50, show_default=True,
              help="Show the newest N trials (0: all).")
@json_option
@store_options
@handle_errors
def trials_command(exp_key: str, states: tuple[str, ...], tid: int | None, limit: int,
                   as_json: bool, mongo: str | None, timeout: float) -> None:
    """List the trials of EXP_KEY, or show one (--tid) with its error and traceback."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    if tid is not None:
        doc = queries.get_trial(store, key, tid)
        if as_json:
            echo_json(_public(doc))
        else:
            click.echo(_trial_detail(doc))
        return
    codes = [STATE_CODES[s.lower()] for s in states]
    docs = queries.find_trials(store, key, codes, limit=limit or None)
    if as_json:
        echo_json({"exp_key": key, "trials": [_public(d) for d in docs]})
        return
    total = store.retry(lambda: store.jobs.count_documents(
        {"exp_key": key, **({"state": {"$in": codes}} if codes else {})}), "count trials")
    rows = []
    for d in docs:
        result = d.get("result") or {}
        note = fmt_error((d.get("misc") or {}).get("error"), width=50)
        reports = d.get("intermediate") or []
        rows.append([d.get("tid"), state_name(d.get("state")), result.get("status", "-"),
                     fmt_loss(result.get("loss")),
                     reports[-1].get("step", "-") if reports else "-", d.get("attempt", "-"),
                     d.get("worker") or "-", fmt_values(raw_values(d), 40), note])
    click.echo(table(["TID", "STATE", "STATUS", "LOSS", "STEP", "ATTEMPT", "WORKER", "VALUES",
                      "ERROR"], rows))
    what = "/".join(states) + " " if states else ""
    if len(docs) < total:
        click.echo(f"(newest {len(docs)} of {total} {what}trials; --limit 0 shows all, "
                   "--tid N shows one in full)")
    else:
        click.echo(f"({total} {what}trials; --tid N shows one in full)")


# -- export ----------------------------------------------------------------------------------
@click.command("export")
@click.argument("exp_key")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True, help="csv: one flat row per trial (param.* and result.* "
              "columns); jsonl: whole trial documents.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              help="File to write (default: standard output).")
@click.option("--state", "states", multiple=True, type=_STATE_CHOICE,
              help="Only trials in this state (repeat for several).")
@store_options
@handle_errors
def export_command(exp_key: str, fmt: str, output: str, states: tuple[str, ...],
                   mongo: str | None, timeout: float) -> None:
    """Export the trials of EXP_KEY as CSV or JSON lines."""
    store = connect(mongo, timeout)
    key = queries.resolve_exp_key(store, exp_key)
    docs = queries.find_trials(store, key, [STATE_CODES[s.lower()] for s in states])
    writer = write_csv if fmt == "csv" else write_jsonl
    with click.open_file(output, "w", encoding="utf-8") as fh:
        n = writer(docs, fh)
    if output != "-":
        click.echo(f"exported {n} trials of {exp_label(key)!r} to {output}", err=True)


# -- worker-health ---------------------------------------------------------------------------
@click.command("worker-health")
@click.option("--host", default=None, help="Worker host name (default: this machine's).")
@click.option("--pid", type=int, default=None, help="Only the worker with this process id.")
@click.option("--strict", is_flag=True,
              help="Report unhealthy (1) when the database cannot be reached; by default that "
                   "is reported healthy (0), so that a database outage does not restart every "
                   "worker (workers ride out outages up to their --reconnect-timeout).")
@json_option
@store_options
def worker_health_command(host: str | None, pid: int | None, strict: bool, as_json: bool,
                          mongo: str | None, timeout: float) -> None:
    """Health check for a worker container: exit 0 if its heartbeat is live, else 1."""
    from .connection import translate_error
    from .health import check_worker_health

    host = host or socket.gethostname()
    try:
        store = connect(mongo, timeout)
        report = check_worker_health(store, host, pid)
    except Exception as exc:  # noqa: BLE001
        err = translate_error(exc)
        if err.exit_code != EXIT_UNREACHABLE or strict:
            click.echo(f"unhealthy: cannot check: {err}", err=True)
            raise click.exceptions.Exit(1) from None
        click.echo(f"healthy (unchecked): {err}", err=True)
        return
    if as_json:
        echo_json({"healthy": report.healthy, "message": report.message,
                   "workers": [w.as_dict() for w in report.workers]})
    else:
        click.echo(report.message)
    if not report.healthy:
        raise click.exceptions.Exit(1)

