"""The progress bar fmin shows: trials done and the best loss so far."""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Callable, Iterator


class ProgressReporter:
    """A tqdm bar (or a user callback) that tolerates NaN and infinite losses.

    ``show`` is True/False, or a callable ``show(n_done_increment, best_loss)`` for custom
    reporting.
    """

    def __init__(self, show: bool | Callable[[int, float], Any], total: int | None) -> None:
        self._callback = show if callable(show) else None
        self._enabled = bool(show) and self._callback is None
        self._total = total
        self._bar: Any = None

    def __enter__(self) -> "ProgressReporter":
        if self._enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self._total, unit="trial", dynamic_ncols=True,
                             desc="best loss: ?")
        return self

    def update(self, n: int, best_loss: float) -> None:
        """``n`` more trials finished; ``best_loss`` is the best so far (inf if none)."""
        if self._callback is not None:
            self._callback(n, best_loss)
        if self._bar is not None:
            if best_loss is not None and math.isfinite(best_loss):
                self._bar.set_description(f"best loss: {best_loss:.6g}", refresh=False)
            self._bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _TqdmStdout:
    """A stdout stand-in that prints through ``tqdm.write`` so prints do not break the bar."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> None:
        from tqdm.auto import tqdm

        if text.rstrip():
            tqdm.write(text.rstrip("\n"), file=self._real)

    def flush(self) -> None:
        self._real.flush()


@contextlib.contextmanager
def tqdm_progress_callback(initial: int, total: int | None) -> Iterator[Any]:
    """hyperopt's progress context: a tqdm bar (``.update(n)``, ``.postfix``) while stdout
    goes through ``tqdm.write``; stdout is restored on exit."""
    from tqdm.auto import tqdm

    real = sys.stdout
    sys.stdout = _TqdmStdout(real)
    try:
        with tqdm(total=total, initial=initial, file=real, dynamic_ncols=True,
                  unit="trial") as bar:
            yield bar
    finally:
        sys.stdout = real


class _NoProgress:
    postfix = ""

    def update(self, n: int) -> None:
        """Ignore progress."""


@contextlib.contextmanager
def no_progress_callback(initial: int, total: int | None) -> Iterator[Any]:
    """hyperopt's silent progress context."""
    yield _NoProgress()


default_callback = tqdm_progress_callback
