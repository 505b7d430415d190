"""Tree-structured Parzen Estimator (TPE) search, vectorized with numpy.

Finished trials are split by loss into a small "below" (good) group and an "above" group. Each
group of hyperparameters that are active together (the parameters of one ``hp.choice`` branch,
or the whole space when nothing is conditional) gets two joint Parzen estimators: ``l(x)``
fitted to the good trials and ``g(x)`` to the rest, each a mixture of one product kernel per
trial plus a broad prior component. Candidates are drawn from ``l`` and the one maximizing
``l(x) / g(x)`` is proposed. Trials still running or queued count as bad observations
(a "constant liar"), so a batch of suggestions, or many workers, never crowd one spot.
The design and its measurements are in docs/tpe.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from hyperq._normal import ndtr, ndtri

from hyperq import rand
from hyperq._quadratic import fit_size, model_minimum
from hyperq._history import History, history_for
from hyperq.base import Domain, Trials, docs_from_values
from hyperq.pyll.base import Param
from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform

# hyperopt's tunables (same names); None means "use the schedule described in docs/tpe.md".
_default_prior_weight = 1.0
_default_n_startup_jobs = None
_default_n_EI_candidates = 64
_default_gamma = None
_default_linear_forgetting = 25

# Internal settings, chosen with scripts/bench/tpe_quality.py (see docs/tpe.md).
MAX_ABOVE = 200        # g(x) uses at most this many (most recent) bad trials: O(1) per trial
CAT_MIN_TRIALS = 10    # every option of a categorical gets this many trials (if under-sampled)
LOCAL_FRACTION = 0.25  # share of candidates drawn close to the best trial ...
LOCAL_SCALE = 0.25     # ... with its kernel widths times this
PENDING_WEIGHT = 0.1   # weight of a running or queued trial in g(x)
RANK_WEIGHT = 3.0      # the best trial of the good group weighs 1 + RANK_WEIGHT, the last 1
LOCAL_SCALE_IN_FLIGHT = 0.5  # ... in wide spaces with LOCAL_SCALE_FULL_AT or more trials
LOCAL_SCALE_FULL_AT = 7      # pending (linear in between): parallel proposals take longer steps
MODEL_FRACTION = 0.75  # share of proposals made by a model step where a quadratic fits well
MODEL_MIN_Q2 = 0.4     # ... predicting left-out trials this well (1 - PRESS / SS) ...
MODEL_MAX_LEVERAGE = 0.99  # ... of those with leverage below this (the rest extrapolate)
MODEL_TRIALS_PER_COEF = 1.5  # ... fitted to this many of the best trials per coefficient
MODEL_FLAT = 1e-3      # ... stepping only along directions curving up at least this share
                       # of the steepest (the rest stay at the best trial's values) ...
MODEL_CURVED_T = 3.0   # ... or by this many standard errors of the fit
MODEL_SPREAD_IN_FLIGHT = 0.5  # with trials pending, minimize a quadratic drawn around the
                              # fit (this times its standard errors) instead of the fit
WARMUP_STARTUP_OVER = 10  # a scheduled startup longer than this is warmed up: modeled from
                          # the first result, without candidates near the best trial
_EPS = 1e-12
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class _Dim:
    """One hyperparameter in the internal coordinate TPE works in."""

    label: str
    categorical: bool
    low: float = -math.inf     # internal bounds (log-space for log scales)
    high: float = math.inf
    center: float = 0.0        # prior component
    width: float = 1.0
    q: float | None = None
    log: bool = False
    int_range: tuple[int, int] | None = None
    probs: np.ndarray | None = None

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low)

    def to_value(self, x: np.ndarray) -> np.ndarray:
        if self.categorical:
            return x.astype(int)
        v = np.exp(x) if self.log else x
        if self.q is not None:
            v = np.round(v / self.q) * self.q
        if self.int_range is not None:
            v = np.clip(v, *self.int_range)
        return v

    def to_internal(self, v: np.ndarray) -> np.ndarray:
        if self.categorical or not self.log:
            return np.asarray(v, dtype=float)
        return np.log(np.maximum(np.asarray(v, dtype=float), _EPS))


def _make_dim(param: Param) -> _Dim:
    d = param.dist
    if isinstance(d, Categorical):
        return _Dim(param.label, True, probs=np.asarray(d.probs, dtype=float))
    if isinstance(d, RandInt):
        return _Dim(param.label, False, d.low - 0.5, d.high - 0.5, 0.5 * (d.low + d.high - 1),
                    float(d.high - d.low), q=1.0, int_range=(d.low, d.high - 1))
    if isinstance(d, Uniform):
        return _Dim(param.label, False, d.low, d.high, 0.5 * (d.low + d.high),
                    d.high - d.low, q=d.q, log=d.log)
    assert isinstance(d, Normal)
    return _Dim(param.label, False, center=d.mu, width=d.sigma, q=d.q, log=d.log)


class _Model:
    """Static facts about a space for TPE: its dimensions and groups, cached per space."""

    def __init__(self, domain: Domain, multivariate: bool) -> None:
        space = domain.space
        self.dims = {label: _make_dim(p) for label, p in space.params.items()}
        by_condition: dict[tuple, list[str]] = {}
        for label in space.labels:
            key = (tuple(sorted(space.conditions[label])) if multivariate else (label,))
            by_condition.setdefault(key, []).append(label)
        self.groups = list(by_condition.values())
        self.group_of = {label: gi for gi, labels in enumerate(self.groups) for label in labels}
        self.spaces: dict[int, _Space] = {}
        # Choices that switch between sub-spaces with parameters of their own.
        self.gates = {gate for paths in space.conditions.values() for path in paths
                      for gate, _ in path}


def _model_for(domain: Domain, multivariate: bool) -> _Model:
    cache = domain.__dict__.setdefault("_tpe_models", {})
    if multivariate not in cache:
        cache[multivariate] = _Model(domain, multivariate)
    return cache[multivariate]


def n_below_for(n: int, gamma: float | None, linear_forgetting: int) -> int:
    """How many of ``n`` finished trials form the good group.

    With ``gamma`` given, hyperopt's rule ``ceil(gamma * sqrt(n))`` (capped by
    ``linear_forgetting``); by default the top 10%, capped at 25.
    """
    if n == 0:
        return 0
    if gamma is None:
        return max(1, min(int(math.ceil(0.1 * n)), 25))
    return max(1, min(int(math.ceil(gamma * math.sqrt(n))), linear_forgetting))


def _neighbour_bandwidths(obs: np.ndarray, lows: np.ndarray, highs: np.ndarray,
                          widths: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Per-observation, per-dimension kernel widths (n x d): the larger gap to a neighbour in
    that dimension (bounds count as neighbours, except for the outermost points), clipped to
    ``[max(floor, width / min(100, n + 2)), width]``."""
    n, d = obs.shape
    if n == 0:
        return np.empty((0, d))
    order = np.argsort(obs, axis=0, kind="stable")
    srt = np.take_along_axis(obs, order, axis=0)
    lo = np.where(np.isfinite(lows), lows, srt[0] - widths)
    hi = np.where(np.isfinite(highs), highs, srt[-1] + widths)
    padded = np.concatenate([lo[None, :], srt, hi[None, :]], axis=0)
    gaps = np.diff(padded, axis=0)
    sig = np.maximum(gaps[:-1], gaps[1:])
    if n >= 2:
        sig[0] = padded[2] - padded[1]
        sig[-1] = padded[-2] - padded[-3]
    out = np.empty_like(sig)
    np.put_along_axis(out, order, sig, axis=0)
    low_clip = np.maximum(widths / min(100.0, n + 2.0), floors)
    return np.clip(out, low_clip, np.maximum(widths, low_clip))


class _Space:
    """The numeric and categorical dimensions of one group, as arrays."""

    def __init__(self, dims: list[_Dim]) -> None:
        self.dims = dims
        self.num = [j for j, dm in enumerate(dims) if not dm.categorical]
        self.cat = [j for j, dm in enumerate(dims) if dm.categorical]
        self.quantized = [j for j in self.num if dims[j].q is not None]
        nd = [dims[j] for j in self.num]
        self.lows = np.array([dm.low for dm in nd])
        self.highs = np.array([dm.high for dm in nd])
        self.centers = np.array([dm.center for dm in nd])
        self.widths = np.array([dm.width for dm in nd])
        # A kernel is never narrower than the quantization step (linear scales).
        self.floors = np.array([dm.q if dm.q is not None and not dm.log and dm.int_range is None
                                else (1.0 if dm.int_range is not None else 0.0) for dm in nd])


def _space_for(dims: list[_Dim], cache: dict[int, _Space]) -> _Space:
    key = id(dims[0]) if len(dims) == 1 else hash(tuple(id(d) for d in dims))
    sp = cache.get(key)
    if sp is None or sp.dims != dims:
        sp = cache[key] = _Space(dims)
    return sp


class _Parzen:
    """A mixture of product kernels (one per observation) plus a prior component.

    Numeric dimensions use truncated normal kernels in the internal coordinate; quantized ones
    are scored by their density at the grid value (kernels are at least one step wide, so the
    ratio l/g matches the ratio of interval masses closely). Categorical dimensions use a
    kernel that keeps most mass on the observed option.
    """

    def __init__(self, sp: _Space, obs: np.ndarray, prior_weight: float,
                 weights: np.ndarray | None = None) -> None:
        self.sp = sp
        n = obs.shape[0]
        self.n = n
        w = np.ones(n + 1)
        if weights is not None and n:
            w[:n] = weights * n / weights.sum()
        w[-1] = prior_weight
        self.p_w = w / w.sum()
        num = obs[:, sp.num]
        sig = _neighbour_bandwidths(num, sp.lows, sp.highs, sp.widths, sp.floors)
        self.mus = np.concatenate([num, sp.centers[None, :]], axis=0)
        self.sigmas = np.concatenate([sig, sp.widths[None, :]], axis=0)
        self.inv_sigmas = 1.0 / self.sigmas
        with np.errstate(divide="ignore", invalid="ignore"):
            self.a = ndtr((sp.lows - self.mus) * self.inv_sigmas)   # CDF at the bounds
            self.b = ndtr((sp.highs - self.mus) * self.inv_sigmas)
        mass = self.b - self.a
        self.const = (-np.log(self.sigmas) - _LOG_SQRT_2PI
                      - np.log(np.maximum(mass, _EPS))).sum(axis=1) + np.log(self.p_w)
        # sum_d ((x - mu) / sigma)^2 expanded into matrix products (x centered per dimension
        # so the terms stay small): |x|^2_P - 2 x.P mu + |mu|^2_P.
        mu_c = self.mus - sp.centers
        self.prec = self.inv_sigmas ** 2
        self.mu_prec = mu_c * self.prec
        self.mu_norm = (mu_c * self.mu_prec).sum(axis=1)
        self.cat_logp = []
        for j in sp.cat:
            probs = sp.dims[j].probs
            k = len(probs)
            table = np.empty((n + 1, k))
            table[:n] = prior_weight / k
            table[np.arange(n), obs[:, j].astype(int)] += 1.0
            table[:n] /= table[:n].sum(axis=1, keepdims=True)
            table[n] = probs
            self.cat_logp.append(np.log(table))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in the internal coordinate, quantized like the parameters."""
        sp = self.sp
        comp = rng.choice(self.n + 1, size=size, p=self.p_w)
        out = np.empty((size, len(sp.dims)))
        if sp.num:
            u = rng.uniform(self.a[comp], self.b[comp])
            u = np.clip(u, _EPS, 1 - _EPS)
            x = np.clip(self.mus[comp] + self.sigmas[comp] * ndtri(u), sp.lows, sp.highs)
            out[:, sp.num] = x
            for j in sp.quantized:
                dm = sp.dims[j]
                out[:, j] = dm.to_internal(dm.to_value(out[:, j]))
        for t, j in enumerate(sp.cat):
            p = np.exp(self.cat_logp[t][comp])
            r = rng.uniform(size=(size, 1))
            out[:, j] = np.minimum((p.cumsum(axis=1) < r).sum(axis=1), p.shape[1] - 1)
        return out

    def sample_near(self, comp: int, rng: np.random.Generator, size: int, scale: float
                    ) -> np.ndarray:
        """``size`` draws around kernel ``comp`` with its widths times ``scale``; categorical
        values are kept."""
        sp = self.sp
        out = np.repeat(np.empty((1, len(sp.dims))), size, axis=0)
        mu, sigma = self.mus[comp], self.sigmas[comp] * scale
        a = ndtr((sp.lows - mu) / sigma)
        b = ndtr((sp.highs - mu) / sigma)
        u = np.clip(rng.uniform(a, b, size=(size, len(mu))), _EPS, 1 - _EPS)
        out[:, sp.num] = np.clip(mu + sigma * ndtri(u), sp.lows, sp.highs)
        for j in sp.quantized:
            dm = sp.dims[j]
            out[:, j] = dm.to_internal(dm.to_value(out[:, j]))
        for t, j in enumerate(sp.cat):
            out[:, j] = np.argmax(self.cat_logp[t][comp])
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density of internal points ``x`` (m x d)."""
        total = np.broadcast_to(self.const, (x.shape[0], self.n + 1)).copy()
        if self.sp.num:
            xc = x[:, self.sp.num] - self.sp.centers
            quad = (xc * xc) @ self.prec.T - 2.0 * (xc @ self.mu_prec.T) + self.mu_norm
            total -= 0.5 * np.maximum(quad, 0.0)
        for t, j in enumerate(self.sp.cat):
            total += self.cat_logp[t][:, x[:, j].astype(int)].T
        peak = total.max(axis=1, keepdims=True)
        return peak[:, 0] + np.log(np.exp(total - peak).sum(axis=1))


def _group_rows(hist: History, dims: list[_Dim]) -> tuple[np.ndarray | None, list]:
    """Rows of the finished trials where every dim of the group is active (None: all rows)."""
    cols = [hist.column(dm.label) for dm in dims]
    n_all = len(hist.losses)
    if all(len(r) == n_all for r, _ in cols):  # active in every trial
        return None, cols
    rows = cols[0][0]
    for r, _ in cols[1:]:
        rows = np.intersect1d(rows, r, assume_unique=True)
    return rows, cols


def _gather(dims: list[_Dim], rows: np.ndarray | None, cols: list, pos: np.ndarray
            ) -> np.ndarray:
    """Internal coordinates of the group's trials at positions ``pos`` (into ``rows``)."""
    obs = np.empty((len(pos), len(dims)))
    for j, (dm, (r, v)) in enumerate(zip(dims, cols)):
        if rows is None or len(r) == len(rows):
            idx = pos
        else:
            idx = np.searchsorted(r, rows[pos])
        obs[:, j] = dm.to_internal(v[idx])
    return obs


def _pending_obs(pending: list[dict[str, Any]], dims: list[_Dim]) -> np.ndarray:
    rows = []
    for vals in pending:
        if all(vals.get(dm.label) for dm in dims):
            rows.append([float(dm.to_internal(vals[dm.label][0])) for dm in dims])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(dims))


def _propose_group(dims: list[_Dim], hist: History, losses: np.ndarray, n_below: Any,
                   pending: list[dict[str, Any]], rng: np.random.Generator, n_candidates: int,
                   prior_weight: float, space_cache: dict[int, _Space],
                   allowed: dict[int, np.ndarray] | None = None,
                   warm_up: bool = False, wide: bool = False) -> dict[str, Any]:
    """Propose values for one group of parameters. ``allowed`` maps positions of categorical
    dims to the only options they may take (see :func:`_starved_options`). While warming up
    (fewer than ``n_startup_jobs`` results) no candidates are drawn near the best trial: one
    of a handful of results is no basin to refine yet. In a ``wide`` space, the candidates
    near the best trial spread further as more trials are pending."""
    rows, cols = _group_rows(hist, dims)
    # Trials are ranked among those where the group is active, so the parameters of a branch
    # that looks worse overall are still modeled by that branch's own best trials.
    group_losses = losses if rows is None else losses[rows]
    n = len(group_losses)
    k = n_below(n)
    below = (np.argpartition(group_losses, k - 1)[:k] if 0 < k < n else np.arange(min(k, n)))
    below = below[np.argsort(group_losses[below], kind="stable")]
    # g(x) uses the most recent MAX_ABOVE other trials: the cost stays flat as history grows.
    recent = np.arange(max(0, n - MAX_ABOVE - k), n)
    above = np.setdiff1d(recent, below, assume_unique=True)[-MAX_ABOVE:]
    l_obs, g_obs = _gather(dims, rows, cols, below), _gather(dims, rows, cols, above)
    # Failed trials count as bad observations, so the search steers away from where the
    # objective fails. Running and queued trials do too, with a small weight (a soft constant
    # liar): enough that workers are never handed the same point, not so much that the region
    # around the best trial is abandoned while eight of its neighbours are being evaluated.
    g_w = None
    if pending or hist.failed:
        failed, busy = _pending_obs(hist.failed, dims), _pending_obs(pending, dims)
        g_w = np.concatenate([np.ones(len(g_obs) + len(failed)),
                              np.full(len(busy), PENDING_WEIGHT)])
        g_obs = np.concatenate([g_obs, failed, busy])
    sp = _space_for(dims, space_cache)
    if not warm_up and not allowed and MODEL_FRACTION > 0 and sp.num \
            and rng.random() < MODEL_FRACTION:
        step = _model_step(dims, sp, rows, cols, group_losses, g_obs,
                           rng if pending else None)
        if step is not None:
            return {dm.label: dm.to_value(np.asarray(step[j])).item()
                    for j, dm in enumerate(dims)}
    l_w = None
    if RANK_WEIGHT > 0 and len(below) > 1:
        l_w = 1.0 + RANK_WEIGHT * np.linspace(1.0, 0.0, len(below))
    l_est = _Parzen(sp, l_obs, prior_weight, l_w)
    g_est = _Parzen(sp, g_obs, prior_weight, g_w)
    cand = l_est.sample(rng, n_candidates)
    n_local = 0 if warm_up else int(round(LOCAL_FRACTION * n_candidates))
    if n_local and len(below) and sp.num:
        busy = min(len(pending), LOCAL_SCALE_FULL_AT) / LOCAL_SCALE_FULL_AT if wide else 0.0
        scale = LOCAL_SCALE + busy * (LOCAL_SCALE_IN_FLIGHT - LOCAL_SCALE)
        cand[:n_local] = l_est.sample_near(0, rng, n_local, scale)
    for j, options in (allowed or {}).items():
        # Candidates with another option get one of these, and l/g then picks the numeric
        # values that suit it, instead of values tuned for the option the model preferred.
        bad = ~np.isin(cand[:, j], options)
        cand[bad, j] = rng.choice(options, size=int(bad.sum()))
    score = l_est.log_pdf(cand) - g_est.log_pdf(cand)
    best = cand[int(np.argmax(score))]
    return {dm.label: dm.to_value(np.asarray(best[j])).item() for j, dm in enumerate(dims)}


def _model_step(dims: list[_Dim], sp: _Space, rows: np.ndarray | None, cols: list,
                group_losses: np.ndarray, others: np.ndarray,
                rng: np.random.Generator | None = None) -> np.ndarray | None:
    """The minimum of a quadratic fitted to the best trials (those with the best trial's
    categorical values), or None where no quadratic fits well or the minimum was already
    tried, is running or is queued (``others``). With ``rng`` (trials are pending), the
    minimum of a quadratic drawn from the fit's uncertainty."""
    d = len(sp.num)
    n = len(group_losses)
    # Trials with other categorical values are looked at too, and left out of the fit.
    m = min(n, fit_size(d, True, MODEL_TRIALS_PER_COEF) * (2 if sp.cat else 1))
    if m < fit_size(d, False, MODEL_TRIALS_PER_COEF):
        return None
    top = np.argpartition(group_losses, m - 1)[:m] if m < n else np.arange(m)
    top = top[np.argsort(group_losses[top], kind="stable")]
    obs = _gather(dims, rows, cols, top)
    if sp.cat:
        same = (obs[:, sp.cat] == obs[0, sp.cat]).all(axis=1)
        obs, top = obs[same], top[same]
    x_num = model_minimum(obs[:, sp.num], group_losses[top], sp.widths, sp.lows, sp.highs,
                          MODEL_MIN_Q2, MODEL_FLAT, MODEL_MAX_LEVERAGE, MODEL_TRIALS_PER_COEF,
                          MODEL_CURVED_T, rng, MODEL_SPREAD_IN_FLIGHT)
    if x_num is None:
        return None
    step = obs[0].copy()
    step[sp.num] = x_num
    for j in sp.quantized:
        step[j] = dims[j].to_internal(dims[j].to_value(step[j]))
    tried = np.concatenate([obs, others]) if len(others) else obs
    gap = np.abs(tried[:, sp.num] - step[sp.num]) / sp.widths
    same_cat = (tried[:, sp.cat] == step[sp.cat]).all(axis=1) if sp.cat else True
    if ((gap.max(axis=1) < 1e-9) & same_cat).any():
        return None
    return step


def _starved_options(label: str, n_options: int, hist: History,
                     pending: list[dict[str, Any]], floor: float, min_trials: int
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """Keep every option of a categorical explored: the options with fewer than ``min_trials``
    trials (finished or pending) whose share is below ``floor / n_options`` and their counts,
    or None when no option is starved. While some are, only they are proposed, so an option
    that looks worse at first (a branch of a conditional space, an optimizer tried with the
    wrong learning rate) gets enough trials for its own model."""
    _rows, values = hist.column(label)
    counts = np.bincount(values.astype(int), minlength=n_options)[:n_options].astype(float)
    for vals in pending:
        v = vals.get(label)
        if v:
            counts[int(v[0])] += 1
    starved = np.flatnonzero((counts < floor * counts.sum() / n_options)
                             & (counts < min_trials))
    return (starved, counts[starved]) if len(starved) else None


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            prior_weight: float = _default_prior_weight,
            n_startup_jobs: int | None = _default_n_startup_jobs,
            n_EI_candidates: int = _default_n_EI_candidates,
            gamma: float | None = _default_gamma,
            linear_forgetting: int = _default_linear_forgetting,
            multivariate: bool = True, constant_liar: bool = True, branch_floor: float = 0.8,
            branch_min_trials: int = 30,
            verbose: bool = True) -> list[dict[str, Any]]:
    """One NEW trial document per id, proposed by TPE.

    Until ``n_startup_jobs`` trials have finished, trials are drawn from the prior. By default
    that is 10, or 2 per parameter (at most 25) for spaces of 6 or more parameters, and then
    only the first trial is random: the rest of the startup is modeled (a warm-up, without
    candidates near the best trial). An explicit ``n_startup_jobs`` means random until then,
    as in hyperopt. Asked for several ids at once, it returns distinct suggestions: each one
    counts as pending for the next (``constant_liar``), as do trials already queued or running.
    ``multivariate=False`` models each parameter on its own, as hyperopt does.
    """
    hist, pending = history_for(trials)
    model = _model_for(domain, multivariate)
    n_obs = len(hist.losses)
    scheduled_startup = max(10, min(2 * len(model.dims), 25))
    wide = scheduled_startup > WARMUP_STARTUP_OVER  # 6 or more parameters
    # An explicit n_startup_jobs means random until then, as in hyperopt: no warm-up.
    warm_up_allowed = n_startup_jobs is None and wide
    if n_startup_jobs is None:
        n_startup_jobs = scheduled_startup
    warm_up = n_obs < n_startup_jobs
    if warm_up and (n_obs == 0 or not warm_up_allowed):
        return rand.suggest(new_ids, domain, trials, seed)
    rng = np.random.default_rng(seed)
    losses = hist.loss_array()

    def n_below(n: int) -> int:
        return n_below_for(n, gamma, linear_forgetting)

    pending = list(pending) if constant_liar else []
    values = []
    for _ in new_ids:
        proposals: dict[int, dict[str, Any]] = {}

        def choose(param: Param) -> Any:
            gi = model.group_of[param.label]
            if gi not in proposals:
                dims = [model.dims[label] for label in model.groups[gi]]
                allowed = {}
                for j, dm in enumerate(dims):
                    if dm.categorical and CAT_MIN_TRIALS and branch_floor > 0 \
                            and dm.label not in model.gates:
                        starved = _starved_options(dm.label, len(dm.probs), hist, pending,
                                                   branch_floor, CAT_MIN_TRIALS)
                        if starved is not None:
                            allowed[j] = starved[0]
                proposals[gi] = _propose_group(dims, hist, losses, n_below, pending, rng,
                                               n_EI_candidates, prior_weight, model.spaces,
                                               allowed, warm_up, wide)
            value = proposals[gi][param.label]
            if branch_floor > 0 and param.label in model.gates:
                # A branch of a conditional space: its own parameters are proposed after
                # this choice, so switching to a starved branch here is enough.
                starved = _starved_options(param.label, len(model.dims[param.label].probs),
                                           hist, pending, branch_floor, branch_min_trials)
                if starved is not None and value not in starved[0]:
                    options, counts = starved
                    value = int(rng.choice(options[counts == counts.min()]))
            return value

        vals = domain.space.assign(choose)
        values.append(vals)
        if constant_liar:
            pending.append({k: [v] for k, v in vals.items()})
    return docs_from_values(trials, domain, new_ids, values)
