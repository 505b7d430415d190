"""A self-contained HTML report of an experiment: ``hyperq.report(trials, "report.html")`` and
``hyperq report EXP_KEY --mongo URI --out report.html``.

The page has a summary, the best trial, the plots (PNG embedded as base64), the errors and a
sortable, filterable table of all trials. Its CSS and JavaScript are inline and its
Content-Security-Policy forbids every network request, so it opens anywhere, offline, and can
be mailed or attached to a ticket as one file.

(The module is ``reporting`` so that ``hyperq.report`` can be the function.)
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import logging
import math
import os
import pprint
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from hyperq.analysis import resolve_space

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hyperq.base import Trials

logger = logging.getLogger(__name__)

__all__ = ["load_mongo_trials", "render_report", "report", "report_command"]

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

_CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde2ea;--bg:#f6f7fb;--card:#fff;--accent:#2f6fdb;
--ok:#1a7f37;--bad:#c62828}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 12px}
.sub{color:var(--muted);margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-top:20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:600;margin-top:2px;word-break:break-word}
.card.best .v{color:var(--ok)}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv{width:auto}table.kv th{color:var(--muted);font-weight:500}
pre{background:var(--bg);padding:10px;border-radius:6px;overflow:auto;font-size:12px;margin:8px 0 0}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px}
figure img{width:100%;height:auto;display:block}
figure.wide{grid-column:1/-1}figure.wide img{width:auto;max-width:100%;margin:0 auto}
figcaption{color:var(--muted);font-size:13px;margin-top:6px}
.note{color:var(--muted);font-style:italic}
.scroll{max-height:70vh;overflow:auto;border:1px solid var(--line);border-radius:10px;
background:var(--card)}
#trials thead th{position:sticky;top:0;background:#eef1f7;z-index:1;padding:0}
#trials thead th button{all:unset;cursor:pointer;display:block;padding:6px 9px;width:100%;
box-sizing:border-box;font-weight:600;white-space:nowrap}
#trials thead th button:focus-visible{outline:2px solid var(--accent)}
#trials th[aria-sort=ascending] button::after{content:" \\25B2";color:var(--accent)}
#trials th[aria-sort=descending] button::after{content:" \\25BC";color:var(--accent)}
#trials tbody tr:hover{background:#f0f5ff}
tr.best{background:#e8f6ec}tr.state-error td,tr.status-fail td{color:var(--bad)}
.toolbar{display:flex;gap:12px;align-items:center;margin-bottom:8px}
.toolbar input{padding:6px 9px;border:1px solid var(--line);border-radius:6px;min-width:260px}
footer{color:var(--muted);font-size:12px;margin:32px 0 8px}
"""

# Sorting: click a header (a <button> for keyboard use) to sort by that column; click again to
# reverse. Numeric cells sort by their data-v value; empty cells always go last.
_JS = """
(function(){
  var table=document.getElementById('trials'); if(!table) return;
  var tbody=table.tBodies[0], heads=table.tHead.rows[0].cells;
  function key(row,i,num){var c=row.cells[i];var v=c.getAttribute('data-v');
    if(v===null) v=c.textContent; if(v==='') return null;
    if(num){var f=parseFloat(v); return isNaN(f)?null:f;} return v.toLowerCase();}
  function sortBy(i){
    var th=heads[i], num=th.getAttribute('data-type')==='num';
    var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
    for(var j=0;j<heads.length;j++) heads[j].removeAttribute('aria-sort');
    th.setAttribute('aria-sort',dir===1?'ascending':'descending');
    var rows=Array.prototype.slice.call(tbody.rows);
    rows.sort(function(a,b){var x=key(a,i,num),y=key(b,i,num);
      if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
      if(num) return (x-y)*dir; return x.localeCompare(y,undefined,{numeric:true})*dir;});
    rows.forEach(function(r){tbody.appendChild(r);});
  }
  Array.prototype.forEach.call(heads,function(th,i){
    th.querySelector('button').addEventListener('click',function(){sortBy(i);});});
  var filter=document.getElementById('filter'), count=document.getElementById('shown');
  if(filter) filter.addEventListener('input',function(){
    var q=filter.value.toLowerCase(), n=0;
    Array.prototype.forEach.call(tbody.rows,function(r){
      var show=!q||r.textContent.toLowerCase().indexOf(q)>=0; r.hidden=!show; if(show) n++;});
    count.textContent=n;});
})();
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A cell's text: numbers short, times to the second, missing as empty."""
    if value is None:
        return ""
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
            return ""
    except (ImportError, TypeError, ValueError):
        pass
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (datetime.datetime,)) or hasattr(value, "to_pydatetime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _duration_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(trials: Any, df: pd.DataFrame) -> list[tuple[str, str, str | None]]:
    """(title, caption, base64 PNG or None) for each plot; a failing plot becomes a note."""
    from hyperq import plotting as P

    specs: list[tuple[str, str, Callable[[], Any]]] = [
        ("Loss history", "Loss of each trial by trial id; the green line is the best loss so far.",
         lambda: P.plot_history(trials)),
        ("Hyperparameter importance",
         ("Fraction of the loss variance each hyperparameter explains on its own "
          "(see docs/analysis.md for the method)."), lambda: P.plot_param_importance(df)),
        ("Loss histogram", "Distribution of the losses of the successful trials.",
         lambda: P.plot_histogram(trials)),
        ("Loss vs each hyperparameter", "Every successful trial; the red star is the best.",
         lambda: P.plot_loss_vs_params(df)),
        ("Parallel coordinates", ("One line per successful trial, coloured by loss "
                                  "(bright = low); the best trial in red."), lambda: P.plot_parallel_coordinates(df)),
        ("Hyperparameters over time", ("Value of each hyperparameter by trial id, coloured "
                                       "by loss (bright = low); red rings mark the 5 best."),
         lambda: P.plot_vars(df, colorize_best=5, columns=4)),
    ]
    if any(t.get("intermediate") for t in trials.trials):
        specs.insert(1, ("Learning curves", (
            "Intermediate values each trial reported, by step: blue finished, orange pruned "
            "(stopped early by the pruner), green still running."),
            lambda: P.plot_intermediate(trials)))
    out: list[tuple[str, str, str | None]] = []
    for title, caption, make in specs:
        try:
            fig = make()
            out.append((title, caption, _png(fig)))
        except Exception as exc:  # noqa: BLE001 - one broken plot must not sink the report
            logger.warning("report: plot %r failed: %s: %s", title, type(exc).__name__, exc)
            out.append((title, f"This plot could not be drawn: {type(exc).__name__}: {exc}",
                        None))
    return out


def _card(key: str, value: str, cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="k">{_esc(key)}</div>'
            f'<div class="v">{_esc(value)}</div></div>')


def _summary(df: pd.DataFrame) -> str:
    import pandas as pd

    counts = df["state"].value_counts()
    ok = (df["status"] == "ok").sum()
    failed = ((df["state"] == "done") & (df["status"] == "fail")).sum()
    oks = df.loc[(df["status"] == "ok") & df["loss"].notna(), "loss"]
    best = f"{oks.min():.5g}" if len(oks) else "none yet"
    start, end = df["book_time"].min(), df["refresh_time"].max()
    wall = None if pd.isna(start) or pd.isna(end) else (end - start).total_seconds()
    compute = float(df["duration"].sum()) if df["duration"].notna().any() else None
    workers = df["worker"].dropna().nunique()
    cards = [
        _card("Trials", str(len(df))),
        _card("Best loss", best, "best"),
        _card("Succeeded", str(int(ok))),
        _card("Failed / error", f"{int(failed)} / {int(counts.get('error', 0))}"),
        _card("Running / queued", f"{int(counts.get('running', 0))} / "
                                  f"{int(counts.get('new', 0))}"),
        _card("Wall time", _duration_text(wall)),
        _card("Compute time", _duration_text(compute)),
        _card("Workers", str(int(workers))),
    ]
    pruned = int((df["status"] == "pruned").sum())
    if pruned:
        cards.insert(3, _card("Pruned", str(pruned)))
    if counts.get("cancel", 0):
        cards.append(_card("Cancelled", str(int(counts["cancel"]))))
    return '<section id="summary"><div class="cards">' + "".join(cards) + "</div></section>"


def _best_section(trials: Any, df: pd.DataFrame, space: Any) -> str:
    from hyperq.exceptions import AllTrialsFailed

    try:
        best = trials.best_trial
    except AllTrialsFailed:
        return ('<section id="best"><h2>Best trial</h2><p class="note">No trial has finished '
                "with status 'ok' yet.</p></section>")
    row = df[df["tid"] == best["tid"]].iloc[0]
    position = int((df["tid"] <= best["tid"]).sum())
    params = df.attrs["params"]
    rows = "".join(f"<tr><th>{_esc(p)}</th><td>{_esc(_fmt(row[p]))}</td></tr>"
                   for p in params if _fmt(row[p]) != "")
    extra = {k: v for k, v in (best.get("result") or {}).items()
             if k not in ("loss", "status") and not k.startswith("_")}
    rows += "".join(f"<tr><th>result {_esc(k)}</th><td>{_esc(_fmt(v))}</td></tr>"
                    for k, v in extra.items() if isinstance(v, (str, int, float, bool)))
    point = ""
    if space is not None:
        try:
            from hyperq.fmin import space_eval

            text = pprint.pformat(space_eval(space.expr, trials.argmin), width=90)
            text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
            point = ("<details><summary>The point the objective received "
                     "(<code>space_eval(space, argmin)</code>)</summary>"
                     f"<pre>{_esc(text[:5000])}</pre></details>")
        except Exception as exc:  # noqa: BLE001 - optional detail
            logger.debug("report: space_eval of the best trial failed: %s", exc)
    return (
        '<section id="best"><h2>Best trial</h2><div class="panel">'
        f'<p>Trial <strong id="best-tid">{_esc(best["tid"])}</strong> reached loss '
        f'<strong id="best-loss">{_esc(_fmt(float(best["result"]["loss"])))}</strong>, '
        f"found as trial {position} of {len(df)}"
        + (f", in {_esc(_duration_text(row['duration']))}" if row["duration"] == row["duration"]
           else "")
        + (f" on {_esc(row['worker'])}" if isinstance(row["worker"], str) else "")
        + f'.</p><table class="kv">{rows}</table>{point}</div></section>'
    )


def _errors_section(df: pd.DataFrame) -> str:
    errs = df[df["error"].notna()]
    if errs.empty:
        return ""
    groups = errs.groupby("error", sort=False)["tid"].agg(["count", "min"]).sort_values(
        "count", ascending=False)
    rows = "".join(
        f'<tr><td class="num">{int(r["count"])}</td><td>{_esc(err)}</td>'
        f'<td class="num">{int(r["min"])}</td></tr>'
        for err, r in groups.head(20).iterrows())
    return ('<section id="errors"><h2>Errors and failures</h2><div class="panel"><table>'
            "<thead><tr><th>trials</th><th>message</th><th>first trial</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div></section>")


def _trials_table(df: pd.DataFrame, best_tid: Any) -> str:
    import pandas as pd

    columns = [c for c in df.columns if c not in ("book_time",)]
    numeric = {c for c in columns if pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])}
    times = {c for c in columns if pd.api.types.is_datetime64_any_dtype(df[c])}
    head = "".join(
        f'<th data-type="{"num" if c in numeric or c in times else "text"}" scope="col">'
        f'<button type="button">{_esc(c)}</button></th>' for c in columns)
    body = []
    for rec in df[columns].itertuples(index=False, name=None):
        cells = []
        for c, v in zip(columns, rec):
            text = _fmt(v)
            if c in numeric:
                cells.append(f'<td class="num" data-v="{_esc(repr(float(v)) if text else "")}">'
                             f"{_esc(text)}</td>")
            elif c in times:
                stamp = f"{v.timestamp():.3f}" if text else ""
                cells.append(f'<td data-v="{stamp}">{_esc(text)}</td>')
            else:
                cells.append(f"<td>{_esc(text)}</td>")
        row = dict(zip(columns, rec))
        cls = [f"state-{row['state']}"]
        if isinstance(row.get("status"), str):
            cls.append(f"status-{row['status']}")
        if row["tid"] == best_tid:
            cls.append("best")
        body.append(f'<tr class="{" ".join(cls)}" data-tid="{_esc(row["tid"])}">'
                    + "".join(cells) + "</tr>")
    return (
        '<section id="all-trials"><h2>All trials</h2>'
        '<div class="toolbar"><input id="filter" type="search" placeholder="Filter rows '
        '(e.g. error, a worker, a value)" aria-label="Filter trials">'
        f'<span><span id="shown">{len(df)}</span> of {len(df)} shown; click a column header '
        "to sort</span></div>"
        f'<div class="scroll"><table id="trials"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div></section>'
    )


def render_report(trials: Trials, space: Any = None, title: str | None = None) -> str:
    """The report page for ``trials`` as an HTML string (see :func:`report`)."""
    from hyperq.analysis import trials_to_dataframe
    from hyperq.version import __version__

    trials.refresh()
    space_ = resolve_space(trials, space)
    df = trials_to_dataframe(trials, space=space_)
    exp_key = getattr(trials, "_exp_key", None)
    title = title or (f"Experiment {exp_key}" if exp_key else "Hyperparameter search")
    try:
        best_tid = trials.best_trial["tid"]
    except Exception:  # noqa: BLE001 - no successful trial yet
        best_tid = None
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    notes = []
    if not df.attrs["decoded"] and df.attrs["params"]:
        notes.append("The search space is not known, so hp.choice parameters show option "
                     "indices; pass space= to hyperq.report to show the options.")
    wide = {"Loss history", "Loss vs each hyperparameter", "Hyperparameters over time",
            "Parallel coordinates"}
    figures = "".join(
        f'<figure{" class=wide" if t in wide else ""}><img alt="{_esc(t)}" '
        f'src="data:image/png;base64,{png}">'
        f"<figcaption><strong>{_esc(t)}.</strong> {_esc(c)}</figcaption></figure>"
        if png else f'<figure><p class="note"><strong>{_esc(t)}.</strong> {_esc(c)}</p></figure>'
        for t, c, png in (_plots(trials, df) if len(df) else []))
    plots = (f'<section id="plots"><h2>Plots</h2><div class="plots">{figures}</div></section>'
             if figures else "")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)} \u2013 hyperq report</title><style>{_CSS}</style></head>",
        f"<body><main><header><h1>{_esc(title)}</h1>",
        (f'<p class="sub">{len(df)} trials \u00b7 generated {_esc(generated)} by hyperq '
         f"{_esc(__version__)}</p></header>"),
        "".join(f'<p class="note">{_esc(n)}</p>' for n in notes),
        _summary(df) if len(df) else '<p class="note" id="empty">No trials yet.</p>',
        _best_section(trials, df, space_) if len(df) else "",
        plots,
        _errors_section(df),
        _trials_table(df, best_tid),
        "<footer>Self-contained page: no network access needed.</footer>",
        f"</main><script>{_JS}</script></body></html>\n",
    ])


def report(trials: Trials, path: str | os.PathLike[str], space: Any = None,
           title: str | None = None) -> str:
    """Write a self-contained HTML report of ``trials`` to ``path``; returns the path.

    Args:
        trials: any Trials (in memory, MongoTrials, loaded from ``trials_save_file``...).
        path: the ``.html`` file to write (its directory must exist).
        space: the search space, to show ``hp.choice`` options by name and the best point;
            defaults to the space fmin remembered on ``trials``.
        title: the page title (default: the experiment key).
    """
    page = render_report(trials, space=space, title=title)
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    logger.info("wrote report of %d trials to %s", len(trials), path)
    return path


# -- loading trials for the command line ---------------------------------------------------
def _open_store(uri: str) -> Any:
    from hyperq.mongo.store import connect_store

    return connect_store(uri, reconnect_timeout=10.0)


def load_mongo_trials(uri: str, exp_key: str, secret: str | None = None,
                      load_domain: bool = True, trust_domain: bool = False
                      ) -> tuple[Trials, Any]:
    """The trials of experiment ``exp_key`` in MongoDB at ``uri``, and its search space.

    The space comes from the domain fmin published for the workers. Loading it unpickles the
    objective (so its modules must be importable here), so it is loaded only when ``secret``
    (or ``$HYPERQ_SECRET``) is set, after checking its signature, or when ``trust_domain`` is
    true. Otherwise, with ``load_domain=False``, or if loading fails (logged as a warning), the
    space is None and choices show as indices.
    Raises ``LookupError`` when the experiment has no trials.
    """
    from hyperq.mongo.domain import DomainCache
    from hyperq.mongo.signing import resolve_secret
    from hyperq.mongo.trials import MongoTrials

    store = _open_store(uri)
    trials = MongoTrials(store, exp_key=exp_key)
    if len(trials) == 0:
        known = sorted(str(k) for k in store.retry(lambda: store.jobs.distinct("exp_key"),
                                                   "list experiments"))
        raise LookupError(
            f"no trials with exp_key {exp_key!r} in {store.target.display}; "
            + (f"experiments there: {', '.join(known[:20])}" if known else "it holds none")
        )
    space = None
    secret_bytes = resolve_secret(secret)
    if load_domain and not secret_bytes and not trust_domain:
        from hyperq.ops.params import UNTRUSTED_DOMAIN

        logger.warning("%s; choices show as indices", UNTRUSTED_DOMAIN)
    elif load_domain:
        key = store.experiment_domain(exp_key)
        if key is None:
            logger.warning("no published domain for exp_key %r: choices show as indices",
                           exp_key)
        else:
            try:
                space = DomainCache(store, secret_bytes).get(key).expr
            except Exception as exc:  # noqa: BLE001 - the report works without it
                logger.warning("cannot load the experiment's domain (%s); choices show as "
                               "indices. Use --no-domain to skip loading it.", exc)
    return trials, space


@click.command("report")
@click.argument("exp_key", required=False)
@click.option("--mongo", "mongo", envvar=["HYPERQ_MONGO_URI", "HYPERQ_MONGO"], default=None,
              help="MongoDB holding the trials (mongodb://host:port/db...). "
                   "[env HYPERQ_MONGO_URI or HYPERQ_MONGO]")
@click.option("--trials-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Report on trials saved by fmin(trials_save_file=...) instead of MongoDB.")
@click.option("--out", "-o", "out", default="report.html", show_default=True,
              type=click.Path(dir_okay=False, writable=True), help="The HTML file to write.")
@click.option("--title", default=None, help="Page title (default: the experiment key).")
@click.option("--secret", default=None, envvar="HYPERQ_SECRET",
              help="Shared secret to verify the published domain. [env HYPERQ_SECRET]")
@click.option("--no-domain", is_flag=True,
              help="Do not unpickle the published domain (choices then show as indices).")
@click.option("--trust-domain", is_flag=True,
              help="Unpickle the published domain without a secret (it is code from the "
                   "database: only if you trust everyone who can write it).")
def report_command(exp_key: str | None, mongo: str | None, trials_file: str | None, out: str,
                   title: str | None, secret: str | None, no_domain: bool,
                   trust_domain: bool) -> None:
    """Write an HTML report (summary, best trial, plots, sortable table) of experiment EXP_KEY.

    \b
    Examples:
      hyperq report exp1 --mongo mongodb://localhost:27017/hyperq --out exp1.html
      hyperq report --trials-file trials.pkl --out report.html
    """
    if trials_file is not None:
        if exp_key is not None:
            raise click.UsageError("give EXP_KEY with --mongo, or --trials-file, not both")
        from hyperq.fmin import load_trials

        try:
            trials, space = load_trials(trials_file), None
        except Exception as exc:  # noqa: BLE001 - tell the user, no traceback
            raise click.ClickException(f"cannot load {trials_file}: {exc}") from None
    else:
        if exp_key is None:
            raise click.UsageError("give the experiment key (EXP_KEY), or --trials-file")
        if not mongo:
            raise click.UsageError("where are the trials? give --mongo URI (or set "
                                   "HYPERQ_MONGO_URI), or --trials-file")
        try:
            trials, space = load_mongo_trials(mongo, exp_key, secret, not no_domain,
                                              trust_domain)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        except (ConnectionError, PermissionError, ValueError) as exc:
            raise click.ClickException(f"cannot read the trials: {exc}") from None
    from hyperq.exceptions import AllTrialsFailed

    report(trials, out, space=space, title=title)
    try:
        best = f", best loss {trials.best_trial['result']['loss']:.6g}"
    except AllTrialsFailed:
        best = ", no successful trial yet"
    click.echo(f"wrote {out} ({len(trials)} trials{best})")
