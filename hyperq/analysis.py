"""Turning trials into something to read: a table (``Trials.to_dataframe``), parameter
importance, and the one-line-per-trial log of the fmin driver.

pandas is optional (``pip install 'hyperq[plot]'``); everything here imports it only when called.

Parameters appear as the objective saw them: an ``hp.choice`` shows the chosen option, not its
index. That needs the search space. ``fmin`` remembers it on the trials object (see
:class:`SpaceRef`); for trials from elsewhere pass ``space=`` yourself, otherwise choice
parameters are shown as option indices and ``df.attrs["decoded"]`` is False.
"""
from __future__ import annotations

import datetime
import logging
import math
import numbers
import pickle
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperq.pyll.base import Apply, Expr, Literal, Param, Switch, dfs
from hyperq.pyll.distributions import Categorical, Numeric
from hyperq.space import SearchSpace

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hyperq.base import Trials

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_NAMES",
    "NotEnoughTrials",
    "SpaceRef",
    "TrialLog",
    "choice_options",
    "decode_values",
    "format_trial",
    "intermediate_to_dataframe",
    "param_importance",
    "resolve_space",
    "trials_to_dataframe",
]

#: Trial ``state`` codes -> the names shown in tables and reports.
STATE_NAMES = {0: "new", 1: "running", 2: "done", 3: "error", 4: "cancel"}

#: Columns every table has, in order; parameters follow ``loss``.
FIXED_COLUMNS = ("tid", "state", "status", "loss")
TAIL_COLUMNS = ("duration", "book_time", "refresh_time", "worker", "error")
#: Columns added after TAIL_COLUMNS when some trial reported intermediate values (issue 14).
REPORT_COLUMNS = ("n_reports", "last_step", "intermediate")

_SCALARS = (str, bool, numbers.Number, type(None))


class NotEnoughTrials(ValueError):
    """Too few successful trials (or no varying parameter) for the requested analysis."""


def _need_pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "this needs pandas; install it with: pip install 'hyperq[plot]'"
        ) from None
    return pandas


# -- remembering the space --------------------------------------------------------------------
class SpaceRef:
    """The search space of an experiment, kept on its trials so tables can decode choices.

    Pickling trials (``trials_save_file``, Spark) must never fail because of it: the space is
    pickled with cloudpickle (which handles lambdas in ``hp.choice`` options), and if even that
    fails it is dropped with a debug message, so a reloaded trials object simply has no space.
    """

    def __init__(self, expr: Any) -> None:
        self.expr = expr
        self._payload: bytes | None = None

    def __getstate__(self) -> dict[str, Any]:
        if self._payload is None and self.expr is not None:
            try:
                import cloudpickle

                self._payload = cloudpickle.dumps(self.expr)
            except Exception as exc:  # noqa: BLE001 - any failure means "don't keep it"
                logger.debug("search space not saved with the trials: %s", exc)
                self.expr = None
        return {"payload": self._payload}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._payload = state.get("payload")
        self.expr = None
        if self._payload is not None:
            try:
                self.expr = pickle.loads(self._payload)
            except Exception as exc:  # noqa: BLE001 - e.g. the objective's module is gone
                logger.debug("saved search space could not be loaded: %s", exc)
                self._payload = None


def resolve_space(trials: Any, space: Any = None) -> SearchSpace | None:
    """The :class:`SearchSpace` to decode ``trials`` with: ``space`` if given, else the one
    fmin remembered on the trials, else None."""
    if space is None:
        ref = getattr(trials, "_space_expr", None)
        space = ref.expr if isinstance(ref, SpaceRef) else ref
    if space is None:
        return None
    if isinstance(space, SearchSpace):
        return space
    return SearchSpace(space)


# -- decoding values --------------------------------------------------------------------------
def _short(value: Any, limit: int = 60) -> Any:
    """A value fit for a table cell: scalars as they are, other objects as short text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SCALARS):
        return value
    text = _compact(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _compact(value: Any) -> str:
    """Readable text for an option object: functions and classes by name, containers inside
    out, without memory addresses."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_compact(k)}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_compact(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    name = getattr(value, "__name__", None)
    if name is not None and callable(value):
        return name
    text = repr(value)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _describe(expr: Expr) -> str:
    """Source-like text for a choice option's structure (not a trial's values), with
    hyperparameters as ``<label>``."""
    if isinstance(expr, Literal):
        return repr(expr.value) if isinstance(expr.value, str) else _compact(expr.value)
    if isinstance(expr, Param):
        return f"<{expr.label}>"
    if isinstance(expr, Switch):
        return f"<{expr.index.label}>" if isinstance(expr.index, Param) else "<choice>"
    if isinstance(expr, Apply) and expr.name == "dict" and not expr.pos_args:
        items = expr.named_args
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in items) + "}"
    if isinstance(expr, Apply):
        inner = ", ".join(_describe(a) for a in expr.pos_args)
        if expr.name == "pos_args" and getattr(expr, "as_list", False):
            return f"[{inner}]"
        if expr.name in ("pos_args", "tuple", "tuple_"):
            return f"({inner})"
        return f"{expr.name}({inner})"
    return type(expr).__name__


def _tag_key(options: list[Expr]) -> str | None:
    """A dict key whose literal values name every option (``{'type': 'svm', ...}``), if any."""
    keysets = []
    for o in options:
        if not (isinstance(o, Apply) and o.name == "dict" and not o.pos_args):
            return None
        keysets.append(dict(o.named_args))
    for key in keysets[0]:
        vals = [ks.get(key) for ks in keysets]
        if all(isinstance(v, Literal) and isinstance(v.value, (str, numbers.Number))
               for v in vals):
            names = [v.value for v in vals]
            if len(set(names)) == len(names):
                return key
    return None


def choice_options(space: SearchSpace) -> dict[str, list[Any]]:
    """``{choice label: [what each option is shown as]}`` for the ``hp.choice`` of a space.

    A plain option (a string, a number) is shown as itself; options that are dicts sharing a
    key with a distinct plain value in each (``{'type': 'svm', ...}``) are shown by that value;
    any other option by its structure with hyperparameters as ``<label>``, e.g.
    ``{'kernel': 'rbf', 'C': <C>}``, shortened to 60 characters.
    """
    out: dict[str, list[Any]] = {}
    for node in dfs(space.expr):
        if isinstance(node, Switch) and isinstance(node.index, Param) \
                and node.index.label not in out:
            key = _tag_key(node.options)
            if key is not None:
                out[node.index.label] = [
                    dict(o.named_args)[key].value
                    for o in node.options]
            else:
                out[node.index.label] = [
                    o.value if isinstance(o, Literal) and isinstance(o.value, _SCALARS)
                    and o.value is not None else _short(_describe(o))
                    for o in node.options]
    return out


def decode_values(space: SearchSpace | None, values: Mapping[str, Any],
                  options: Mapping[str, list[Any]] | None = None) -> dict[str, Any]:
    """``{label: value}`` of one trial with each ``hp.choice`` index replaced by its option
    (as :func:`choice_options` shows it). Without a space the values are returned unchanged.
    """
    out = {k: _short(v) for k, v in values.items()}
    if space is None:
        return out
    if options is None:
        options = choice_options(space)
    for label, shown in options.items():
        if label in values:
            try:
                out[label] = shown[int(values[label])]
            except (IndexError, TypeError, ValueError):
                logger.debug("choice %r has no option %r", label, values[label])
    return out


def _trial_values(trial: Mapping[str, Any]) -> dict[str, Any]:
    vals = trial.get("misc", {}).get("vals", {})
    return {k: v[0] for k, v in vals.items() if isinstance(v, (list, tuple)) and len(v) == 1}


# -- one trial as a row -------------------------------------------------------------------------
def _error_text(trial: Mapping[str, Any]) -> str | None:
    err = trial.get("misc", {}).get("error")
    if err:
        if isinstance(err, (list, tuple)) and len(err) == 2:
            kind, msg = err
            m = re.match(r"<class '([\w.]+)'>", str(kind))
            kind = m.group(1).rsplit(".", 1)[-1] if m else str(kind)
            return f"{kind}: {msg}"
        return str(err)
    failure = trial.get("result", {}).get("failure")
    return str(failure) if failure else None


def _duration(trial: Mapping[str, Any]) -> float | None:
    start, end = trial.get("book_time"), trial.get("refresh_time")
    if trial.get("state") not in (2, 3) or not isinstance(start, datetime.datetime) \
            or not isinstance(end, datetime.datetime):
        return None
    return max(0.0, (end - start).total_seconds())


def _loss(trial: Mapping[str, Any]) -> float | None:
    loss = trial.get("result", {}).get("loss")
    if loss is None or isinstance(loss, bool):
        return None
    try:
        return float(loss)
    except (TypeError, ValueError):
        return None


class _Columns:
    """Which parameter and result columns a table has, and what kind each parameter is."""

    def __init__(self, trials: Iterable[Mapping[str, Any]], space: SearchSpace | None) -> None:
        trials = list(trials)
        labels: dict[str, None] = dict.fromkeys(space.labels) if space is not None else {}
        for t in trials:
            labels.update(dict.fromkeys(t.get("misc", {}).get("vals", {})))
        taken = set(FIXED_COLUMNS) | set(TAIL_COLUMNS) | set(REPORT_COLUMNS)
        #: label -> column name (a label that clashes with a fixed column gets ``param:``).
        self.params = {lab: (f"param:{lab}" if lab in taken else lab) for lab in labels}
        self.log_params: set[str] = set()
        self.categorical: set[str] = set()
        if space is not None:
            for lab, p in space.params.items():
                if isinstance(p.dist, Categorical):
                    self.categorical.add(self.params[lab])
                elif isinstance(p.dist, Numeric) and p.dist.log:
                    self.log_params.add(self.params[lab])
        result_keys: dict[str, None] = {}
        for t in trials:
            for k, v in t.get("result", {}).items():
                if k not in ("loss", "status", "failure") and isinstance(v, _SCALARS):
                    result_keys[k] = None
        self.results = {k: f"result.{k}" for k in result_keys}
        self.reports = any(t.get("intermediate") for t in trials)


def trials_to_dataframe(trials: Trials, space: Any = None) -> pd.DataFrame:
    """One row per trial: what ran, with which parameters, how it ended.

    Columns, in order: ``tid``, ``state`` (new/running/done/error/cancel), ``status`` (the
    result status), ``loss``, one column per hyperparameter label (the value the objective saw;
    empty where a conditional parameter was inactive), ``duration`` (seconds from booking to
    the last update, for finished trials), ``book_time``, ``refresh_time``, ``worker`` (the
    trial's owner), ``error`` (exception or failure reason), then, when some trial reported
    intermediate values, ``n_reports``, ``last_step`` and ``intermediate`` (its ``[(step,
    value), ...]``), then ``result.<key>`` for every other plain value the objective returned
    (e.g. ``result.accuracy``). A pruned trial has status ``pruned`` and its last reported value
    as its loss; :func:`intermediate_to_dataframe` has one row per report.

    Args:
        trials: any ``Trials`` (also ``MongoTrials``, ``SparkTrials``, a loaded pickle).
        space: the search space, to show ``hp.choice`` options rather than indices. Defaults
            to the space fmin remembered on ``trials``.

    ``df.attrs`` holds ``params`` (the parameter columns), ``categorical`` and ``log_scale``
    (subsets of them), ``decoded`` (whether choices were decoded) and ``result_columns``.
    """
    pd = _need_pandas()
    space_ = resolve_space(trials, space)
    docs = list(trials.trials)
    cols = _Columns(docs, space_)
    options = choice_options(space_) if space_ is not None else None
    rows = []
    for t in docs:
        result = t.get("result", {}) or {}
        row: dict[str, Any] = {
            "tid": t.get("tid"),
            "state": STATE_NAMES.get(t.get("state"), str(t.get("state"))),
            # a trial that did not finish normally has no meaningful result status yet
            "status": result.get("status") if t.get("state") == 2 else None,
            "loss": _loss(t),
        }
        values = decode_values(space_, _trial_values(t), options)
        for lab, col in cols.params.items():
            row[col] = values.get(lab)
        row.update({
            "duration": _duration(t), "book_time": t.get("book_time"),
            "refresh_time": t.get("refresh_time"), "worker": t.get("owner"),
            "error": _error_text(t),
        })
        if cols.reports:
            items = t.get("intermediate") or []
            row["n_reports"] = len(items)
            row["last_step"] = items[-1]["step"] if items else None
            row["intermediate"] = [(i["step"], i["value"]) for i in items]
        for k, col in cols.results.items():
            row[col] = _short(result.get(k))
        rows.append(row)
    columns = [*FIXED_COLUMNS, *cols.params.values(), *TAIL_COLUMNS,
               *(REPORT_COLUMNS if cols.reports else ()), *cols.results.values()]
    df = pd.DataFrame(rows, columns=columns)
    for col in cols.params.values():
        if col not in cols.categorical and df[col].notna().any():
            numeric = pd.to_numeric(df[col], errors="coerce")
            if numeric.notna().sum() == df[col].notna().sum():
                df[col] = numeric
            else:
                cols.categorical.add(col)
        elif col not in cols.categorical:
            df[col] = df[col].astype(float)
    for col in ("loss", "duration"):
        df[col] = df[col].astype(float)
    for col in ("book_time", "refresh_time"):
        df[col] = pd.to_datetime(df[col])
    df.attrs.update({
        "params": list(cols.params.values()),
        "categorical": sorted(cols.categorical),
        "log_scale": sorted(cols.log_params),
        "decoded": space_ is not None,
        "result_columns": list(cols.results.values()),
    })
    return df


def intermediate_to_dataframe(trials: Trials) -> pd.DataFrame:
    """One row per intermediate report: ``tid``, ``step``, ``value``, ``rung`` (the pruner's
    comparison point, or None), the trial's ``state`` and ``status``; in tid, then report order.
    """
    pd = _need_pandas()
    rows = []
    for t in trials.trials:
        state = STATE_NAMES.get(t.get("state"), str(t.get("state")))
        status = (t.get("result") or {}).get("status") if t.get("state") == 2 else None
        for item in t.get("intermediate") or ():
            rows.append({"tid": t.get("tid"), "step": item["step"], "value": item["value"],
                         "rung": item.get("rung"), "state": state, "status": status})
    df = pd.DataFrame(rows, columns=["tid", "step", "value", "rung", "state", "status"])
    df["value"] = df["value"].astype(float)
    return df


def _as_frame(data: Any, space: Any = None) -> pd.DataFrame:
    """A table from trials, or the table itself (from :func:`trials_to_dataframe`)."""
    pd = _need_pandas()
    if isinstance(data, pd.DataFrame):
        if "params" not in data.attrs:
            raise ValueError(
                "this DataFrame has lost its attrs; pass the trials, or a frame straight from "
                "trials.to_dataframe()"
            )
        return data
    return trials_to_dataframe(data, space=space)


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The trials that finished with status 'ok' and a finite loss."""
    mask = (df["state"] == "done") & (df["status"] == "ok") & np.isfinite(
        df["loss"].to_numpy(dtype=float, na_value=np.nan))
    return df[mask]


# -- parameter importance ---------------------------------------------------------------------
def _encode(df: pd.DataFrame, params: list[str], categorical: set[str]) -> np.ndarray:
    """Parameters as numbers for a model: categories as codes, inactive as an own value."""
    pd = _need_pandas()
    cols = []
    for p in params:
        s = df[p]
        if p in categorical:
            codes = pd.Categorical(s.astype("string")).codes.astype(float)  # NaN -> -1
            cols.append(codes)
        else:
            x = s.to_numpy(dtype=float, na_value=np.nan)
            finite = x[np.isfinite(x)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            cols.append(np.where(np.isfinite(x), x, lo - (hi - lo + 1.0)))
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def _grid(column: np.ndarray, max_points: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Values to set a parameter to, with weights following its empirical distribution."""
    values, counts = np.unique(column, return_counts=True)
    if values.size <= max_points:
        return values, counts / counts.sum()
    qs = np.quantile(column, (np.arange(max_points) + 0.5) / max_points)
    return qs, np.full(max_points, 1.0 / max_points)


def _forest_importance(X: np.ndarray, y: np.ndarray, random_state: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=64, min_samples_leaf=2, random_state=random_state,
                                  n_jobs=1)
    model.fit(X, y)
    rng = np.random.default_rng(random_state)
    background = X if len(X) <= 256 else X[rng.choice(len(X), 256, replace=False)]
    total = float(np.var(model.predict(background)))
    out = np.zeros(X.shape[1])
    if total <= 0:
        return out
    for j in range(X.shape[1]):
        grid, weights = _grid(X[:, j])
        batch = np.repeat(background[None, :, :], len(grid), axis=0)
        batch[:, :, j] = grid[:, None]
        curve = model.predict(batch.reshape(-1, X.shape[1])).reshape(len(grid), -1).mean(axis=1)
        mean = float(np.dot(weights, curve))
        out[j] = float(np.dot(weights, (curve - mean) ** 2)) / total
    return np.clip(out, 0.0, 1.0)


def _anova_importance(X: np.ndarray, y: np.ndarray, categorical: list[bool]) -> np.ndarray:
    """Epsilon-squared of a one-way ANOVA per parameter (numeric ones binned by quantile)."""
    n = len(y)
    ss_total = float(np.sum((y - y.mean()) ** 2))
    out = np.zeros(X.shape[1])
    if ss_total <= 0:
        return out
    n_bins = int(min(10, max(2, n // 5)))
    for j in range(X.shape[1]):
        x = X[:, j]
        if categorical[j] or np.unique(x).size <= n_bins:
            groups = x
        else:
            edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1]))
            groups = np.searchsorted(edges, x, side="right")
        labels = np.unique(groups)
        k = labels.size
        if k < 2 or n - k <= 0:
            continue
        ss_between = sum(
            float(np.sum(groups == g)) * (float(y[groups == g].mean()) - float(y.mean())) ** 2
            for g in labels
        )
        ms_within = (ss_total - ss_between) / (n - k)
        out[j] = max(0.0, (ss_between - (k - 1) * ms_within) / (ss_total + ms_within))
    return out


def param_importance(data: Any, space: Any = None, method: str = "auto",
                     random_state: int = 0) -> pd.Series:
    """How much of the variation of the loss each hyperparameter accounts for on its own.

    Uses the successful trials (status 'ok', finite loss) and the parameters that vary in them.

    ``method="forest"`` (needs scikit-learn): fit a random forest ``loss ~ parameters``, then for
    each parameter compute its partial dependence (the forest's mean prediction with that
    parameter set to each of its observed values) and report the variance of that curve as a
    fraction of the variance of the forest's predictions. This is the first-order term of a
    functional ANOVA (fANOVA) decomposition, estimated on the observed configurations.

    ``method="anova"`` (no extra dependency): a one-way ANOVA of the loss per parameter, with
    numeric parameters cut into up to 10 quantile bins; reports epsilon-squared, the fraction
    of the loss variance explained by the groups corrected for chance (so a parameter that does
    not matter scores about 0).

    ``method="auto"`` uses the forest when scikit-learn is installed, else the ANOVA.
    An inactive conditional parameter counts as one more value of it. Scores are in [0, 1];
    they need not sum to 1 (the rest is interactions and noise).

    Returns a Series indexed by parameter, highest first, with ``attrs["method"]`` set.
    Raises :class:`NotEnoughTrials` with fewer than 5 successful trials or no varying parameter.
    """
    pd = _need_pandas()
    df = _as_frame(data, space)
    ok = ok_rows(df)
    params = [p for p in df.attrs["params"] if ok[p].astype("string").nunique(dropna=False) > 1]
    if len(ok) < 5:
        raise NotEnoughTrials(
            f"parameter importance needs at least 5 successful trials, there are {len(ok)}"
        )
    if not params:
        raise NotEnoughTrials("no parameter takes more than one value in the successful trials")
    if method == "auto":
        try:
            import sklearn  # noqa: F401
            method = "forest"
        except ImportError:
            method = "anova"
    categorical = set(df.attrs["categorical"])
    X = _encode(ok, params, categorical)
    y = ok["loss"].to_numpy(dtype=float)
    if method == "forest":
        scores = _forest_importance(X, y, random_state)
    elif method == "anova":
        scores = _anova_importance(X, y, [p in categorical for p in params])
    else:
        raise ValueError(f"method must be 'auto', 'forest' or 'anova', got {method!r}")
    series = pd.Series(scores, index=params, name="importance").sort_values(ascending=False)
    series.attrs["method"] = method
    series.attrs["n_trials"] = len(ok)
    return series


# -- the driver's log line --------------------------------------------------------------------
def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def format_trial(trial: Mapping[str, Any], best_loss: float | None = None,
                 best_tid: int | None = None, space: SearchSpace | None = None,
                 max_chars: int = 200) -> str:
    """One line describing a finished trial, e.g.
    ``trial 12 done in 1.23s: loss 0.4321 (best 0.4012 at trial 7) | lr=0.0123 model='svm'``."""
    state = STATE_NAMES.get(trial.get("state"), str(trial.get("state")))
    status = (trial.get("result") or {}).get("status")
    duration = _duration(trial)
    outcome = state if trial.get("state") != 2 or status in (None, "ok") else status
    head = f"trial {trial.get('tid')} {outcome}"
    if duration is not None:
        head += f" in {duration:.3g}s" if duration >= 1 else f" in {duration * 1000:.0f}ms"
    loss = _loss(trial)
    if trial.get("state") == 3:
        body = _error_text(trial) or "error"
    elif status == "pruned":
        body = f"at step {(trial.get('result') or {}).get('pruned_at_step')}"
        if loss is not None:
            body += f", last value {loss:.6g}"
    elif status == "ok" and loss is not None:
        body = f"loss {loss:.6g}"
        if best_tid is not None and best_tid == trial.get("tid"):
            body += " (new best)"
        elif best_loss is not None and math.isfinite(best_loss):
            body += f" (best {best_loss:.6g}" + (f" at trial {best_tid})" if best_tid is not None
                                                  else ")")
    else:
        body = _error_text(trial) or f"status {status}"
    params = " ".join(f"{k}={_fmt_value(v)}"
                      for k, v in decode_values(space, _trial_values(trial)).items())
    line = f"{head}: {body}"
    if params:
        line += f" | {params}"
    return line if len(line) <= max_chars else line[: max_chars - 1] + "\u2026"


class TrialLog:
    """Logs one INFO line per finished trial on the driver (logger ``hyperq.fmin``).

    Quiet unless logging is configured to show INFO for ``hyperq.fmin`` (Python's default, and a
    notebook's, shows only warnings), e.g. ``logging.basicConfig(level=logging.INFO)`` or
    ``logging.getLogger("hyperq.fmin").setLevel(logging.INFO)`` with a handler.

    fmin uses it as: ``log = TrialLog(logger, space=domain.space, enabled=verbose)``;
    ``log.prime(trials)`` before the loop (trials finished earlier are not logged again);
    ``log.finished(trial)`` when a trial it ran finishes; ``log.scan(trials)`` after refreshing
    trials that other processes evaluate.
    """

    def __init__(self, logger: logging.Logger | None = None, space: Any = None,
                 enabled: bool = True) -> None:
        self.logger = logger or logging.getLogger("hyperq.fmin")
        self.space = space if space is None or isinstance(space, SearchSpace) else \
            SearchSpace(space)
        self.enabled = enabled
        self.best_loss = math.inf
        self.best_tid: int | None = None
        self._seen: set[Any] = set()

    def _track(self, trial: Mapping[str, Any]) -> None:
        loss = _loss(trial)
        if trial.get("state") == 2 and (trial.get("result") or {}).get("status") == "ok" \
                and loss is not None and loss < self.best_loss:
            self.best_loss, self.best_tid = loss, trial.get("tid")

    def prime(self, trials: Iterable[Mapping[str, Any]]) -> None:
        """Remember the trials finished already, without logging them."""
        for t in getattr(trials, "trials", trials):
            if t.get("state") in (2, 3):
                self._seen.add(t.get("tid"))
                self._track(t)

    def finished(self, trial: Mapping[str, Any]) -> None:
        """Log ``trial`` if it finished and was not logged before."""
        tid = trial.get("tid")
        if trial.get("state") not in (2, 3) or tid in self._seen:
            return
        self._seen.add(tid)
        self._track(trial)
        if self.enabled and self.logger.isEnabledFor(logging.INFO):
            self.logger.info("%s", format_trial(trial, self.best_loss, self.best_tid,
                                                self.space))

    def scan(self, trials: Iterable[Mapping[str, Any]]) -> None:
        """Log every finished trial of ``trials`` not logged yet, in tid order."""
        new = [t for t in getattr(trials, "trials", trials)
               if t.get("state") in (2, 3) and t.get("tid") not in self._seen]
        for t in sorted(new, key=lambda t: t.get("tid", 0)):
            self.finished(t)
