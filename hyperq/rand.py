"""Random search: every trial drawn independently from the prior."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hyperq.base import Domain, Trials, docs_from_values


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            **_unused: Any) -> list[dict[str, Any]]:
    """One NEW trial document per id, sampled from the prior."""
    rng = np.random.default_rng(seed)
    values = [domain.space.sample(rng) for _ in new_ids]
    return docs_from_values(trials, domain, new_ids, values)


def suggest_batch(new_ids: Sequence[int], domain: Domain, trials: Trials,
                  seed: int) -> list[dict[str, Any]]:
    """Alias of :func:`suggest` (hyperopt compatibility)."""
    return suggest(new_ids, domain, trials, seed)
