"""Output of the operator commands: aligned tables, JSON, and CSV/JSONL export of trials."""
from __future__ import annotations

import base64
import csv
import datetime
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import IO, Any

from .queries import exp_label, state_name

__all__ = [
    "dumps",
    "fmt_age",
    "fmt_error",
    "fmt_loss",
    "fmt_time",
    "fmt_values",
    "jsonable",
    "table",
    "trial_record",
    "write_csv",
    "write_jsonl",
]


def jsonable(obj: Any) -> Any:
    """``obj`` with datetimes as ISO-8601 UTC strings, ids as strings, NaN as ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is not None:
            obj = obj.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return obj.isoformat(timespec="milliseconds") + "Z"
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        try:
            return jsonable(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)


def dumps(obj: Any, indent: int | None = 2) -> str:
    """JSON text for ``obj`` (see :func:`jsonable`)."""
    return json.dumps(jsonable(obj), indent=indent, sort_keys=False)


_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with a header line; numbers right-aligned."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def numeric(cell: str) -> bool:
        return _NUMBER.fullmatch(cell) is not None

    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        cells = [c.rjust(w) if numeric(c) else c.ljust(w) for c, w in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fmt_age(seconds: float | None) -> str:
    """``'4s'``, ``'3m12s'``, ``'2h05m'``, ``'3d04h'``; ``'-'`` when unknown."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def fmt_loss(loss: Any) -> str:
    """A loss with 6 significant digits, ``'-'`` when there is none."""
    if loss is None:
        return "-"
    if isinstance(loss, (int, float)):
        return f"{loss:.6g}"
    return str(loss)


def fmt_time(when: datetime.datetime | None) -> str:
    """``'2026-11-26 20:18:08Z'`` (UTC, as stored), ``'-'`` when unknown."""
    if when is None:
        return "-"
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_values(values: dict[str, Any], width: int = 60) -> str:
    """``'lr=0.01 depth=3'``, cut to ``width`` characters."""
    text = " ".join(f"{k}={fmt_loss(v) if isinstance(v, float) else v}"
                    for k, v in sorted(values.items()))
    return text if len(text) <= width else text[: width - 3] + "..."


def fmt_error(error: Any, width: int | None = None) -> str:
    """A worker's ``misc.error`` (``[type, message]``) as ``'ValueError: message'``."""
    if not error:
        return ""
    if isinstance(error, (list, tuple)) and len(error) == 2:
        kind = re.sub(r"^<class '(?:[\w.]*\.)?(\w+)'>$", r"\1", str(error[0]))
        text = f"{kind}: {error[1]}"
    else:
        text = str(error)
    text = " ".join(text.split())
    if width and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def _duration(doc: dict[str, Any]) -> float | None:
    start, end = doc.get("book_time"), doc.get("refresh_time")
    if isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime):
        return round((end - start).total_seconds(), 3)
    return None


def trial_record(doc: dict[str, Any]) -> dict[str, Any]:
    """One trial as a flat record: identity, state, loss, timing, ``param.<label>`` columns,
    and the other scalar result fields as ``result.<key>``."""
    from .params import raw_values

    result = doc.get("result") or {}
    misc = doc.get("misc") or {}
    record: dict[str, Any] = {
        "exp_key": exp_label(doc.get("exp_key")),
        "tid": doc.get("tid"),
        "state": state_name(doc.get("state")),
        "status": result.get("status"),
        "loss": result.get("loss"),
        "attempt": doc.get("attempt"),
        "worker": doc.get("worker") or doc.get("owner"),
        "book_time": jsonable(doc.get("book_time")),
        "refresh_time": jsonable(doc.get("refresh_time")),
        "duration_s": _duration(doc),
        "error": fmt_error(misc.get("error")) or None,
    }
    reports = doc.get("intermediate") or []
    if reports:  # intermediate reports (issue 14): the whole list is in --format jsonl
        record["n_reports"] = len(reports)
        record["last_step"] = reports[-1].get("step")
        record["last_value"] = reports[-1].get("value")
    for label, value in sorted(raw_values(doc).items()):
        record[f"param.{label}"] = jsonable(value)
    for key, value in sorted(result.items()):
        if key not in ("status", "loss") and (value is None or
                                              isinstance(value, (bool, int, float, str))):
            record[f"result.{key}"] = jsonable(value)
    return record


def write_csv(docs: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    """Write trials as CSV, one row each, with the union of every trial's columns."""
    records = [trial_record(d) for d in docs]
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return len(records)


_PRIVATE_FIELDS = ("_id", "lease_token")


def write_jsonl(docs: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    """Write whole trial documents (hyperopt's schema) as JSON lines, lease tokens left out."""
    n = 0
    for doc in docs:
        clean = {k: v for k, v in doc.items() if k not in _PRIVATE_FIELDS}
        fh.write(json.dumps(jsonable(clean), sort_keys=True) + "\n")
        n += 1
    return n
