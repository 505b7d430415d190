"""The dashboard's web application (Starlette): pages, the JSON API and the actions.

Pages are one HTML shell (``static/index.html``) whose script draws the experiments list,
one experiment, one trial or the workers from the JSON API:

=====================  ======================================================================
``GET /api/info``         the source, whether actions are enabled
``GET /api/experiments``  every experiment with counts, best loss, throughput, last activity
``GET /api/live``         ``?key=K&since=V``: the live view of one experiment (unchanged since
                          version ``V``: just ``{"version": V, "unchanged": true}``)
``GET /api/trials``       ``?key=K&page=&size=&sort=&order=&state=&status=&loss_max=&tid=``
``GET /api/trial``        ``?key=K&tid=N``: one trial in full
``GET /api/params``       ``?key=K``: loss vs parameters, parallel coordinates, importance
``GET /api/workers``      the worker registry
``POST /api/requeue``     ``{"key", "stale", "errors", "tids"}`` (needs the token)
``POST /api/cancel``      ``{"key"}`` (needs the token)
=====================  ======================================================================
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from importlib import resources
from urllib.parse import parse_qs
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hyperq.ops.errors import NotFound
from hyperq.ops.output import fmt_error, jsonable

from . import security
from .live import LiveExperiment
from .sources import STATE_CODES, PageQuery, TrialSource, exp_from_label, experiment_summary

log = logging.getLogger(__name__)

__all__ = ["create_app"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
ACTION_HEADER = "x-hyperq-action"


class BadRequest(ValueError):
    """A request the API cannot answer as asked (400, with the reason)."""


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(jsonable(data), allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _static_dir() -> str:
    return str(resources.files("hyperq.dashboard") / "static")


class Dashboard:
    """The state behind the app: the source, the live experiments, the token."""

    def __init__(self, source: TrialSource, token: str | None = None,
                 live_interval: float = 0.4) -> None:
        self.source = source
        self.token = token
        self.live_interval = live_interval
        self._live: dict[Any, LiveExperiment] = {}
        self._lock = threading.Lock()
        self._experiments: tuple[float, list[dict[str, Any]]] | None = None
        self._decoders: dict[Any, tuple[Any, dict[str, list[Any]]] | None] = {}
        self._keys: tuple[float, list[Any]] | None = None
        self._resolved: dict[str, Any] = {}  # label -> exp_key, once found

    @property
    def actions_enabled(self) -> bool:
        """Actions need a token and a source that can change trials."""
        return bool(self.token) and self.source.can_act

    def live(self, exp_key: Any) -> LiveExperiment:
        """The shared live view of ``exp_key``."""
        with self._lock:
            if exp_key not in self._live:
                self._live[exp_key] = LiveExperiment(self.source, exp_key,
                                                     min_interval=self.live_interval)
            return self._live[exp_key]

    def decoder(self, exp_key: Any) -> tuple[Any, dict[str, list[Any]]] | None:
        """``(search space, how each hp.choice option is shown)`` when the space can be had
        safely (see :meth:`TrialSource.space`), else None: choices then show as indices."""
        if exp_key not in self._decoders:
            from hyperq.analysis import choice_options, resolve_space

            space = resolve_space(None, self.source.space(exp_key))
            self._decoders[exp_key] = (space, choice_options(space)) if space is not None \
                else None
        return self._decoders[exp_key]

    def experiment_keys(self, fresh: bool = False) -> list[Any]:
        """The experiments in the source, re-listed at most every 2 s unless ``fresh``."""
        cached = self._keys
        if fresh or cached is None or time.monotonic() - cached[0] > 2.0:
            cached = (time.monotonic(), self.source.experiment_keys())
            self._keys = cached
        return cached[1]

    def resolve(self, label: str) -> Any:
        """The exp_key shown as ``label``: an experiment listed before resolves without
        listing the experiments again (a ``distinct`` over every trial, which some servers
        answer by reading them all), another one is looked up by the source, so a new one is
        found without waiting."""
        if label in self._resolved:
            return self._resolved[label]
        cached = self._keys
        key: Any
        try:
            if cached is None:
                raise NotFound(label)
            key = exp_from_label(cached[1], label)
        except NotFound:
            key = self.source.experiment_for_label(label)
        self._resolved[label] = key
        return key

    def exp_key(self, request: Request) -> Any:
        label = request.query_params.get("key")
        if label is None:
            raise BadRequest("give the experiment as ?key=EXP_KEY")
        return self.resolve(label)

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment's summary (re-read at most once a second)."""
        cached = self._experiments
        if cached and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        now = self.source.now()
        rows = [experiment_summary(self.source, key, now) for key in self.experiment_keys()]
        # which workers are alive and what they serve: the registry alone (counting each
        # worker's trials is an aggregation over every trial, for the workers page only)
        workers = self.source.workers(count_trials=False)
        if workers is not None:
            for row in rows:
                row["live_workers"] = sum(1 for w in workers if w["status"] == "alive"
                                          and w["serves"] in ("*", str(row["exp_key"])))
        self._experiments = (time.monotonic(), rows)
        return rows

    # -- authentication ----------------------------------------------------------------
    def authenticated(self, request: Request) -> bool:
        if not self.token:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and \
                security.token_matches(self.token, header[7:].strip()):
            return True
        cookie = request.cookies.get(security.COOKIE)
        return cookie is not None and security.token_matches(
            security.cookie_value(self.token), cookie)


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None


def _page_query(request: Request) -> PageQuery:
    params = request.query_params
    states = []
    for name in filter(None, (params.get("state") or "").split(",")):
        if name not in STATE_CODES:
            raise BadRequest(f"unknown state {name!r}; use {', '.join(STATE_CODES)}")
        states.append(STATE_CODES[name])
    loss_max = params.get("loss_max")
    try:
        loss_value = float(loss_max) if loss_max not in (None, "") else None
    except ValueError:
        raise BadRequest(f"loss_max must be a number, got {loss_max!r}") from None
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc, got {order!r}")
    try:
        return PageQuery(page=_int(request, "page", 1) or 1, size=_int(request, "size", 50) or 50,
                         sort=params.get("sort", "tid"), descending=order == "desc",
                         states=states, status=params.get("status") or None,
                         loss_max=loss_value, tid=_int(request, "tid"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _table_row(doc: dict[str, Any], decoder: tuple[Any, dict[str, list[Any]]] | None
               ) -> dict[str, Any]:
    from hyperq.analysis import decode_values
    from hyperq.ops.output import trial_record

    record = trial_record(doc)
    values = {k[6:]: v for k, v in record.items() if k.startswith("param.")}
    if decoder:
        values = {k: jsonable(v) for k, v in decode_values(decoder[0], values, decoder[1]).items()}
    return {
        "tid": record["tid"], "state": record["state"], "status": record["status"],
        "loss": record["loss"], "attempt": record["attempt"], "worker": record["worker"],
        "book_time": record["book_time"], "refresh_time": record["refresh_time"],
        "duration_s": record["duration_s"], "error": record["error"],
        "params": values,
    }


def _trial_detail(dash: Dashboard, doc: dict[str, Any]) -> dict[str, Any]:
    from hyperq.ops.output import trial_record

    misc = doc.get("misc") or {}
    result = {k: v for k, v in (doc.get("result") or {}).items()}
    values, evaluated, why = dash.source.parameters(doc)
    record = trial_record(doc)
    return {
        "tid": doc.get("tid"),
        "exp_key": doc.get("exp_key"),
        "state": record["state"],
        "status": record["status"],
        "loss": record["loss"],
        "values": values,
        "parameters": evaluated,
        "parameters_note": why,
        "result": result,
        "error": fmt_error(misc.get("error")) or None,
        "traceback": misc.get("traceback"),
        "previous_errors": [{"error": fmt_error(p.get("error")) or None,
                             "traceback": p.get("traceback")}
                            for p in misc.get("previous_errors") or []],
        "refusals": doc.get("refusals") or [],
        "attempt": doc.get("attempt"),
        "max_attempts": doc.get("max_attempts"),
        "requeues": doc.get("requeues"),
        "worker": doc.get("worker") or doc.get("owner"),
        "book_time": doc.get("book_time"),
        "refresh_time": doc.get("refresh_time"),
        "duration_s": record["duration_s"],
        "intermediate": [
            {"step": i.get("step"), "value": i.get("value")}
            for i in (doc.get("intermediate") or []) if isinstance(i, dict)],
    }


def create_app(source: TrialSource, token: str | None = None, live_interval: float = 0.4
               ) -> Starlette:
    """The dashboard app reading ``source``; with ``token``, sign-in and actions are on."""
    dash = Dashboard(source, token=token, live_interval=live_interval)
    index_html = (resources.files("hyperq.dashboard") / "static" / "index.html").read_text(
        encoding="utf-8")
    login_html = (resources.files("hyperq.dashboard") / "static" / "login.html").read_text(
        encoding="utf-8")

    def page(request: Request) -> Response:
        return HTMLResponse(index_html)

    async def login(request: Request) -> Response:
        if request.method == "GET" or not dash.token:
            if not dash.token:
                return RedirectResponse("/", status_code=303)
            return HTMLResponse(login_html.replace("{{message}}", ""))
        # a urlencoded form with one field: parsed here, no multipart library needed
        body = (await request.body())[:4096].decode("utf-8", "replace")
        given = (parse_qs(body).get("token") or [""])[0]
        if not security.token_matches(dash.token, given):
            await asyncio.sleep(0.5)  # slow down guessing
            return HTMLResponse(login_html.replace(
                "{{message}}", '<p class="error" id="login-error">Wrong token.</p>'),
                status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(security.COOKIE, security.cookie_value(dash.token), httponly=True,
                            samesite="strict", path="/")
        return response

    def info(request: Request) -> Response:
        return _json({"source": source.kind, "description": source.description,
                      "actions": dash.actions_enabled, "token": bool(dash.token),
                      "secret": bool(getattr(source, "secret", None))})

    def experiments(request: Request) -> Response:
        return _json({"experiments": dash.experiments()})

    def live(request: Request) -> Response:
        view = dash.live(dash.exp_key(request))
        since = _int(request, "since")
        first = view.first_view()
        if first is not None:  # a large experiment is still being read: counts first
            return _json(first)
        view.refresh()
        if since is not None and since == view.version:
            return _json({"version": since, "unchanged": True})
        return _json(view.snapshot())

    def trials(request: Request) -> Response:
        exp_key = dash.exp_key(request)
        query = _page_query(request)
        docs, total = source.page(exp_key, query)
        return _json({"total": total, "page": query.page, "size": query.size,
                      "pages": max(1, -(-total // query.size)), "sort": query.sort,
                      "order": "desc" if query.descending else "asc",
                      "rows": [_table_row(d, dash.decoder(exp_key)) for d in docs]})

    def trial(request: Request) -> Response:
        exp_key = dash.exp_key(request)
        tid = _int(request, "tid")
        if tid is None:
            raise BadRequest("give the trial as &tid=N")
        return _json(_trial_detail(dash, source.trial(exp_key, tid)))

    def params(request: Request) -> Response:
        return _json(dash.live(dash.exp_key(request)).parameters())

    def workers(request: Request) -> Response:
        found = source.workers()
        return _json({"workers": found, "registry": found is not None})

    async def action(request: Request) -> Response:
        if not dash.actions_enabled:
            why = ("this source cannot change trials" if not source.can_act else
                   "actions are disabled: start the dashboard with --token to enable them")
            return _json({"error": why}, 403)
        if request.headers.get(ACTION_HEADER) != "1":
            return _json({"error": f"actions need the {ACTION_HEADER} header"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return _json({"error": "the body must be JSON"}, 400)
        label = body.get("key") if isinstance(body, dict) else None
        if not isinstance(label, str):
            return _json({"error": "give the experiment as {\"key\": EXP_KEY}"}, 400)
        exp_key = dash.resolve(label)
        from starlette.concurrency import run_in_threadpool

        if request.url.path.endswith("/requeue"):
            tids = body.get("tids") or []
            if not isinstance(tids, list) or not all(isinstance(t, int) for t in tids):
                return _json({"error": "tids must be a list of trial ids"}, 400)
            done = await run_in_threadpool(source.requeue, exp_key, bool(body.get("stale", True)),
                                           bool(body.get("errors", True)), tids)
            log.warning("dashboard: requeue on %r by %s: %s", label,
                        request.client.host if request.client else "?", done)
        else:
            done = {"cancelled": await run_in_threadpool(source.cancel, exp_key)}
            log.warning("dashboard: cancel on %r by %s: %s", label,
                        request.client.host if request.client else "?", done)
        dash.live(exp_key).refresh(force=True)
        return _json({"ok": True, **done})

    routes = [
        Route("/", page), Route("/experiment", page), Route("/trial", page),
        Route("/workers", page),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/api/info", info), Route("/api/experiments", experiments),
        Route("/api/live", live), Route("/api/trials", trials), Route("/api/trial", trial),
        Route("/api/params", params), Route("/api/workers", workers),
        Route("/api/requeue", action, methods=["POST"]),
        Route("/api/cancel", action, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=_static_dir()), name="static"),
    ]
    async def not_found(request: Request, exc: Exception) -> Response:
        return _json({"error": str(exc)}, 404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _json({"error": str(exc)}, 400)

    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        public = path == "/login" or path.startswith("/static/")
        if not public and not dash.authenticated(request):
            if path.startswith("/api/"):
                response: Response = _json({"error": "sign in first: the dashboard needs its "
                                                     "token"}, 401)
            else:
                response = RedirectResponse("/login", status_code=303)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
                    exception_handlers={NotFound: not_found, BadRequest: bad_request})
    app.state.dashboard = dash
    return app
