"""``atpe.suggest``: hyperopt's Adaptive TPE name, served by hyperq's TPE.

hyperopt's ATPE tunes TPE's own settings with pre-trained LightGBM models. hyperq does not ship
those models; ``hyperq.atpe.suggest`` is :func:`hyperq.tpe.suggest`, so scripts and libraries
that pass ``algo=atpe.suggest`` run (with TPE's search behaviour) instead of failing to import.
"""
from __future__ import annotations

from typing import Any, Sequence

from hyperq import tpe
from hyperq.base import Domain, Trials


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`hyperq.tpe.suggest` under hyperopt's ``atpe`` name (extra ATPE options ignored)."""
    return tpe.suggest(new_ids, domain, trials, seed)
