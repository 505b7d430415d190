"""Plots of an experiment (matplotlib; ``pip install 'hyperq[plot]'``).

hyperopt's ``main_plot_history``, ``main_plot_histogram`` and ``main_plot_vars`` keep their names
and arguments: with ``do_show`` they draw on pyplot's current figure and show it, and with
``do_show=False`` they draw on pyplot's current figure so ``plt.savefig`` works as before. Every
function also takes ``path=``: then it draws on a new figure that never touches pyplot (no
display needed, safe in threads and on servers) and saves it there; the format follows the
extension (``.png``, ``.svg``, ``.pdf``).

The other plots (:func:`plot_history`, :func:`plot_histogram`, :func:`plot_vars` -- the same
three on a new figure -- and :func:`plot_parallel_coordinates`, :func:`plot_loss_vs_params`,
:func:`plot_param_importance`) return a new :class:`matplotlib.figure.Figure`, which notebooks
display; pass ``path=`` to save it or ``do_show=True`` to show it with pyplot.

All functions return the figure they drew on.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperq.analysis import NotEnoughTrials, _as_frame, ok_rows, param_importance

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = [
    "default_status_colors",
    "main_plot_histogram",
    "main_plot_history",
    "main_plot_vars",
    "plot_histogram",
    "plot_history",
    "plot_intermediate",
    "plot_loss_vs_params",
    "plot_parallel_coordinates",
    "plot_param_importance",
    "plot_vars",
]

#: Marker colour per result status, as in hyperopt.
default_status_colors = {"new": "k", "running": "g", "ok": "b", "fail": "r", "pruned": "orange"}

_NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}
_CMAP = "viridis_r"  # low loss = bright yellow, high loss = dark blue


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("plots need matplotlib; install it with: pip install 'hyperq[plot]'") \
            from None


# -- figures ------------------------------------------------------------------------------------
def _new_figure(figsize: tuple[float, float], path: str | None, do_show: bool,
                use_pyplot_current: bool = False) -> Figure:
    """A figure to draw on: pyplot's when showing (or for hyperopt-style calls), else a
    standalone Agg figure."""
    _need_matplotlib()
    if path is None and (do_show or use_pyplot_current):
        import matplotlib.pyplot as plt

        if not use_pyplot_current:
            return plt.figure(figsize=figsize)
        fig = plt.gcf()
        if not fig.axes:  # a fresh figure: give it a size that fits the plot
            fig.set_size_inches(*figsize)
        return fig
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: str | None, do_show: bool) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=100)
        logger.debug("saved plot to %s", path)
    if do_show and path is None:
        import matplotlib
        import matplotlib.pyplot as plt

        if matplotlib.get_backend().lower() not in _NON_INTERACTIVE:
            plt.show()
    return fig


def _message(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_shape(n: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(int(columns), n))
    return math.ceil(n / columns), columns


def _losses(trials: Any) -> tuple[list[int], list[float], list[str]]:
    """tid, loss and status of every trial that has a numeric loss."""
    tids, losses, statuses = [], [], []
    for t in trials.trials:
        loss = (t.get("result") or {}).get("loss")
        if loss is None or isinstance(loss, bool):
            continue
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            continue
        tids.append(t["tid"])
        losses.append(loss)
        statuses.append((t.get("result") or {}).get("status"))
    return tids, losses, statuses


# -- hyperopt's three -----------------------------------------------------------------------
def _draw_history(fig: Figure, trials: Any, status_colors: Mapping[str, str] | None,
                  title: str) -> None:
    status_colors = dict(default_status_colors, **(status_colors or {}))
    ax = fig.gca()
    # finished without a usable result: marked along the top edge, not silently left out
    failed = [t["tid"] for t in trials.trials if t.get("state") == 3 or (
        t.get("state") == 2 and (t.get("result") or {}).get("status") != "ok")]
    skip = set(failed)
    tids, losses, statuses = _losses(trials)
    finite = [(t, y, s) for t, y, s in zip(tids, losses, statuses)
              if math.isfinite(y) and t not in skip]
    if not finite and not failed:
        _message(ax, "no trial has a loss yet")
        ax.set_title(title)
        return
    for status in sorted({s for _, _, s in finite}, key=str):
        pts = [(t, y) for t, y, s in finite if s == status]
        ax.scatter(*zip(*pts), c=status_colors.get(status, "0.5"), s=18,
                   label=f"{status} ({len(pts)})", zorder=3)
    ok = sorted((t, y) for t, y, s in finite if s == "ok")
    if ok:
        best = np.minimum.accumulate([y for _, y in ok])
        ax.step([t for t, _ in ok], best, where="post", c="g", lw=1.5, label="best so far",
                zorder=2)
        try:
            avg_best = trials.average_best_error()
            ax.axhline(avg_best, c="g", ls=":", lw=1, label=f"best {avg_best:.4g}")
        except Exception as exc:  # noqa: BLE001 - the line is decoration
            logger.debug("no average best error: %s", exc)
    if failed:
        ax.scatter(failed, [0.97] * len(failed), transform=ax.get_xaxis_transform(), marker="x",
                   c=status_colors.get("fail", "r"), s=24,
                   label=f"fail or error ({len(failed)})", zorder=3)
    ax.set_xlabel("trial id")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title)


def main_plot_history(trials: Any, do_show: bool = True,
                      status_colors: Mapping[str, str] | None = None,
                      title: str = "Loss History", path: str | None = None) -> Figure:
    """Loss of each trial against its trial id, coloured by status, with the best loss so far
    and (as hyperopt) a line at the average best error."""
    fig = _new_figure((8, 4.5), path, do_show, use_pyplot_current=True)
    _draw_history(fig, trials, status_colors, title)
    return _finish(fig, path, do_show)


def plot_history(trials: Any, path: str | None = None, do_show: bool = False,
                 status_colors: Mapping[str, str] | None = None,
                 title: str = "Loss history") -> Figure:
    """:func:`main_plot_history` on a new figure (never pyplot's current one)."""
    fig = _new_figure((8, 4.5), path, do_show)
    _draw_history(fig, trials, status_colors, title)
    return _finish(fig, path, do_show)


def _draw_histogram(fig: Figure, trials: Any, title: str) -> None:
    ax = fig.gca()
    _, losses, statuses = _losses(trials)
    ys = [y for y, s in zip(losses, statuses) if s == "ok" and math.isfinite(y)]
    if not ys:
        _message(ax, "no successful trial yet")
    else:
        ax.hist(ys, bins=min(30, max(5, len(ys) // 3)), color="tab:blue", edgecolor="white")
        ax.set_xlabel("loss")
        ax.set_ylabel("trials")
    ax.set_title(f"{title} ({len(ys)} trials)" if ys else title)


def main_plot_histogram(trials: Any, do_show: bool = True, title: str = "Loss Histogram",
                        path: str | None = None) -> Figure:
    """Histogram of the finite losses of the trials with status 'ok'."""
    fig = _new_figure((6, 4), path, do_show, use_pyplot_current=True)
    _draw_histogram(fig, trials, title)
    return _finish(fig, path, do_show)


def plot_histogram(trials: Any, path: str | None = None, do_show: bool = False,
                   title: str = "Loss histogram") -> Figure:
    """:func:`main_plot_histogram` on a new figure (never pyplot's current one)."""
    fig = _new_figure((6, 4), path, do_show)
    _draw_histogram(fig, trials, title)
    return _finish(fig, path, do_show)


def _category_positions(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Categorical values -> positions 0..k-1 (missing -> NaN) and the tick labels."""
    text = series.astype("string")
    cats = sorted(text.dropna().unique(), key=str)
    pos = {c: float(i) for i, c in enumerate(cats)}
    values = text.map(pos).astype(float).to_numpy(dtype=float, na_value=np.nan)
    return values, [str(c) for c in cats]


def _param_axis(ax: Axes, df: pd.DataFrame, param: str, axis: str) -> np.ndarray:
    """Values of ``param`` ready to plot on ``axis`` ('x' or 'y'), setting scale and ticks."""
    if param in df.attrs["categorical"]:
        values, labels = _category_positions(df[param])
        setter = ax.set_xticks if axis == "x" else ax.set_yticks
        setter(range(len(labels)), [lab if len(lab) <= 18 else lab[:17] + "\u2026"
                                    for lab in labels])
        if axis == "x" and len(labels) > 3:
            ax.tick_params(axis="x", labelrotation=30)
        return values
    values = df[param].to_numpy(dtype=float, na_value=np.nan)
    if param in df.attrs["log_scale"] and np.nanmin(values, initial=np.inf) > 0:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    return values


def _draw_vars(fig: Figure, df: pd.DataFrame, params: list[str], rows: int, cols: int,
               fontsize: int, colorize_best: int | None, arrange_by_loss: bool) -> None:
    if not params:
        _message(fig.add_subplot(1, 1, 1), "no hyperparameters")
        return
    ok = ok_rows(df)
    loss = df["loss"].to_numpy(dtype=float, na_value=np.nan)
    lo, hi = (ok["loss"].min(), ok["loss"].max()) if len(ok) else (0.0, 1.0)
    best_tids: set[int] = set()
    if colorize_best and len(ok):
        best_tids = set(ok.nsmallest(int(colorize_best), "loss")["tid"])
    x_all = loss if arrange_by_loss else df["tid"].to_numpy(dtype=float)
    import matplotlib as mpl

    cmap = mpl.colormaps[_CMAP].with_extremes(bad="lightgrey")  # grey: no loss
    for i, param in enumerate(params):
        ax = fig.add_subplot(rows, cols, i + 1)
        y = _param_axis(ax, df, param, "y")
        mask = np.isfinite(y) & np.isfinite(x_all)
        ax.scatter(x_all[mask], y[mask], c=loss[mask], cmap=cmap, vmin=lo, vmax=hi, s=14,
                   plotnonfinite=True)
        if best_tids:
            sel = mask & df["tid"].isin(best_tids).to_numpy()
            ax.scatter(x_all[sel], y[sel], facecolors="none", edgecolors="red", s=60, lw=1.2)
        ax.set_title(param, fontsize=fontsize)
        ax.tick_params(labelsize=max(6, fontsize - 2))
        ax.set_xlabel("loss" if arrange_by_loss else "trial id", fontsize=max(6, fontsize - 2))


def _vars_layout(df: pd.DataFrame, columns: int) -> tuple[list[str], int, int]:
    params = sorted(df.attrs["params"])
    rows, cols = _grid_shape(max(1, len(params)), columns)
    return params, rows, cols


def main_plot_vars(trials: Any, do_show: bool = True, fontsize: int = 10,
                   colorize_best: int | None = None, columns: int = 5,
                   arrange_by_loss: bool = False, path: str | None = None,
                   space: Any = None) -> Figure:
    """One panel per hyperparameter: its value in each trial (x: trial id, or the loss with
    ``arrange_by_loss``), coloured by loss (grey: no loss). ``colorize_best=n`` rings the n
    best trials in red.

    ``space`` (default: the one fmin remembered) shows ``hp.choice`` options by name and log
    parameters on a log axis.
    """
    df = _as_frame(trials, space)
    params, rows, cols = _vars_layout(df, columns)
    fig = _new_figure((3.2 * cols, 2.6 * rows), path, do_show, use_pyplot_current=True)
    _draw_vars(fig, df, params, rows, cols, fontsize, colorize_best, arrange_by_loss)
    return _finish(fig, path, do_show)


def plot_vars(trials: Any, space: Any = None, path: str | None = None, do_show: bool = False,
              fontsize: int = 10, colorize_best: int | None = None, columns: int = 5,
              arrange_by_loss: bool = False) -> Figure:
    """:func:`main_plot_vars` on a new figure (never pyplot's current one)."""
    df = _as_frame(trials, space)
    params, rows, cols = _vars_layout(df, columns)
    fig = _new_figure((3.2 * cols, 2.6 * rows), path, do_show)
    _draw_vars(fig, df, params, rows, cols, fontsize, colorize_best, arrange_by_loss)
    return _finish(fig, path, do_show)


# -- more views -------------------------------------------------------------------------------
def _unit_scale(df: pd.DataFrame, param: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """``param`` mapped to [0, 1] (log for log parameters) and ticks for its axis."""
    if param in df.attrs["categorical"]:
        pos, labels = _category_positions(df[param])
        k = max(1, len(labels) - 1)
        ticks = [(i / k if len(labels) > 1 else 0.5, lab[:14]) for i, lab in enumerate(labels)]
        return (pos / k if len(labels) > 1 else np.where(np.isfinite(pos), 0.5, np.nan)), ticks
    v = df[param].to_numpy(dtype=float, na_value=np.nan)
    log = param in df.attrs["log_scale"] and np.nanmin(v, initial=np.inf) > 0
    t = np.log(v) if log else v
    lo, hi = np.nanmin(t, initial=np.inf), np.nanmax(t, initial=-np.inf)
    if not np.isfinite(lo):
        return np.full(len(v), np.nan), []
    span = hi - lo if hi > lo else 1.0
    unit = (t - lo) / span if hi > lo else np.where(np.isfinite(t), 0.5, np.nan)
    ends = [(float(np.exp(lo)) if log else float(lo)), (float(np.exp(hi)) if log else float(hi))]
    ticks = [(0.0, f"{ends[0]:.3g}"), (1.0, f"{ends[1]:.3g}")] if hi > lo else \
        [(0.5, f"{ends[0]:.3g}")]
    return unit, ticks


def plot_parallel_coordinates(trials: Any, space: Any = None, path: str | None = None,
                              do_show: bool = False, params: Sequence[str] | None = None,
                              max_params: int = 12, title: str = "Parallel coordinates"
                              ) -> Figure:
    """One line per successful trial across one vertical axis per hyperparameter, coloured by
    loss (bright = low); the best trial is drawn thick in red.

    Each axis spans the observed range (log scale for log parameters; ``hp.choice`` options
    spread evenly); a conditional parameter's inactive trials sit at "n/a" below the axis.
    ``params`` picks and orders the axes (default: all, at most ``max_params``).
    """
    df = _as_frame(trials, space)
    ok = ok_rows(df)
    params = list(params) if params is not None else list(df.attrs["params"])[:max_params]
    fig = _new_figure((max(6.0, 1.3 * len(params) + 2), 4.5), path, do_show)
    ax = fig.add_subplot(1, 1, 1)
    if len(ok) == 0 or not params:
        _message(ax, "no successful trial yet" if len(ok) == 0 else "no hyperparameters")
        ax.set_title(title)
        return _finish(fig, path, do_show)
    import matplotlib as mpl

    NA = -0.12
    columns, ticks = [], []
    for p in params:
        unit, tk = _unit_scale(ok, p)
        columns.append(np.where(np.isfinite(unit), unit, NA))
        ticks.append(tk)
    data = np.column_stack(columns)
    loss = ok["loss"].to_numpy(dtype=float)
    norm = mpl.colors.Normalize(vmin=loss.min(), vmax=loss.max() if loss.max() > loss.min()
                                else loss.min() + 1)
    cmap = mpl.colormaps[_CMAP]
    xs = np.arange(len(params))
    order = np.argsort(-loss)  # worst first, so the good lines end up on top
    for i in order:
        ax.plot(xs, data[i], color=cmap(norm(loss[i])), alpha=0.6, lw=1)
    best = int(np.argmin(loss))
    ax.plot(xs, data[best], color="red", lw=2.5, label=f"best (trial {int(ok['tid'].iloc[best])})")
    for x, tk in zip(xs, ticks):
        ax.axvline(x, color="0.3", lw=0.8)
        for y, text in tk:
            ax.text(x + 0.03, y, text, fontsize=7, va="center", color="0.2")
        if np.any(data[:, x] == NA):
            ax.text(x + 0.03, NA, "n/a", fontsize=7, va="center", color="0.4")
    ax.set_xticks(xs, params, rotation=20 if len(params) > 5 else 0)
    ax.set_yticks([])
    ax.set_ylim(NA - 0.06, 1.06)
    ax.set_xlim(-0.2, len(params) - 0.6)
    ax.legend(loc="upper right", fontsize="small")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="loss")
    ax.set_title(title)
    return _finish(fig, path, do_show)


def plot_loss_vs_params(trials: Any, space: Any = None, path: str | None = None,
                        do_show: bool = False, params: Sequence[str] | None = None,
                        columns: int = 4, title: str = "Loss vs each hyperparameter"
                        ) -> Figure:
    """One panel per hyperparameter: loss (y) against its value (x) for the successful trials;
    choices as jittered strips, log parameters on a log axis, the best trial as a red star."""
    df = _as_frame(trials, space)
    ok = ok_rows(df)
    params = list(params) if params is not None else list(df.attrs["params"])
    rows, cols = _grid_shape(max(1, len(params)), columns)
    fig = _new_figure((3.4 * cols, 2.8 * rows + 0.4), path, do_show)
    if len(ok) == 0 or not params:
        _message(fig.add_subplot(1, 1, 1),
                 "no successful trial yet" if len(ok) == 0 else "no hyperparameters")
        fig.suptitle(title)
        return _finish(fig, path, do_show)
    rng = np.random.default_rng(0)
    loss = ok["loss"].to_numpy(dtype=float)
    best = int(np.argmin(loss))
    for i, p in enumerate(params):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = _param_axis(ax, ok, p, "x")
        if p in ok.attrs["categorical"]:
            x = x + rng.uniform(-0.15, 0.15, len(x))
        mask = np.isfinite(x)
        ax.scatter(x[mask], loss[mask], s=12, alpha=0.7, color="tab:blue")
        if mask[best]:
            ax.scatter([x[best]], [loss[best]], marker="*", s=140, color="red", zorder=3)
        ax.set_xlabel(p)
        if i % cols == 0:
            ax.set_ylabel("loss")
        inactive = int((~mask).sum())
        if inactive:
            ax.set_title(f"{inactive} trials inactive", fontsize=8, color="0.4")
    fig.suptitle(title)
    return _finish(fig, path, do_show)


def plot_param_importance(trials: Any, space: Any = None, path: str | None = None,
                          do_show: bool = False, method: str = "auto",
                          title: str = "Hyperparameter importance") -> Figure:
    """Horizontal bars of :func:`hyperq.analysis.param_importance` (the fraction of loss
    variance each hyperparameter explains on its own; the method is named in the title)."""
    fig = _new_figure((6.5, 0.4 + 0.45 * 8), path, do_show)
    ax = fig.add_subplot(1, 1, 1)
    try:
        imp = param_importance(trials, space=space, method=method)
    except NotEnoughTrials as exc:
        _message(ax, str(exc))
        ax.set_title(title)
        return _finish(fig, path, do_show)
    imp = imp.iloc[::-1]  # matplotlib draws bottom-up: most important on top
    fig.set_size_inches(6.5, 1.2 + 0.35 * len(imp))
    ax.barh(list(imp.index), imp.to_numpy(), color="tab:blue")
    for y, v in enumerate(imp.to_numpy()):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(0.05, float(imp.max()) * 1.2))
    label = {"forest": "random-forest fANOVA main effects",
             "anova": "one-way ANOVA, epsilon-squared"}[imp.attrs["method"]]
    ax.set_xlabel(f"fraction of loss variance explained ({label}, "
                  f"{imp.attrs['n_trials']} trials)", fontsize=8)
    ax.set_title(title)
    return _finish(fig, path, do_show)


def plot_intermediate(trials: Any, path: str | None = None, do_show: bool = False,
                      title: str = "Learning curves") -> Figure:
    """The intermediate values each trial reported, by step: finished trials in blue, pruned
    ones in orange (ending where they were stopped), running ones in green."""
    fig = _new_figure((7.5, 4.2), path, do_show)
    ax = fig.add_subplot(1, 1, 1)
    colors = {"ok": "tab:blue", "pruned": "tab:orange"}
    drawn = 0
    for t in getattr(trials, "trials", trials):
        items = t.get("intermediate") or []
        if not items:
            continue
        status = (t.get("result") or {}).get("status") if t.get("state") == 2 else "running"
        color = colors.get(status, "tab:green" if status == "running" else "tab:red")
        ax.plot([i["step"] for i in items], [i["value"] for i in items], color=color,
                alpha=0.5, linewidth=1)
        drawn += 1
    if not drawn:
        _message(ax, "no trial reported intermediate values")
    else:
        ax.set_xlabel("step")
        ax.set_ylabel("reported value")
    ax.set_title(title)
    return _finish(fig, path, do_show)
