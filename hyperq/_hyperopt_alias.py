"""``install_as_hyperopt()``: make ``import hyperopt`` (and its submodules) return hyperq.

A meta path finder placed first on :data:`sys.meta_path` answers every ``hyperopt`` and
``hyperopt.<sub>`` import with the matching hyperq module, so code that imports hyperopt,
including third-party libraries, runs on hyperq without loading the real hyperopt.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from types import ModuleType
from typing import Sequence

logger = logging.getLogger(__name__)

ALIAS = "hyperopt"
#: set by install_as_hyperopt(); a process that imports hyperq with it set installs the alias
#: too, so worker processes (ProcessTrials, local hyperq workers) unpickle objectives whose
#: modules import hyperopt
ENV_FLAG = "HYPERQ_AS_HYPEROPT"
TARGET = "hyperq"

#: hyperopt module names whose hyperq counterpart has another name.
RENAMED: dict[str, str] = {}


def target_name(fullname: str) -> str:
    """The hyperq module serving the hyperopt module ``fullname``."""
    if fullname in RENAMED:
        return RENAMED[fullname]
    return TARGET + fullname[len(ALIAS):]


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder; exec_module swaps in the hyperq module

    def exec_module(self, module: ModuleType) -> None:
        real = importlib.import_module(self.target)
        # The import system returns whatever sys.modules holds under the name after exec.
        sys.modules[module.__name__] = real


class HyperoptAliasFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ``hyperopt`` and ``hyperopt.*`` with hyperq's modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        name = target_name(fullname)
        if fullname != ALIAS and importlib.util.find_spec(name) is None:
            return None  # no hyperq counterpart: the import fails as for a missing module
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name))


def install_as_hyperopt() -> None:
    """Make ``import hyperopt`` and ``import hyperopt.<sub>`` return hyperq's modules.

    Call it before anything imports hyperopt. Idempotent. Raises ``RuntimeError`` if the real
    hyperopt was imported already (its objects would then mix with hyperq's). Sets the
    environment variable ``HYPERQ_AS_HYPEROPT=1``, so processes started afterwards that import
    hyperq (ProcessTrials workers, local workers) install it too; set it yourself for workers
    started elsewhere.
    """
    loaded = sys.modules.get(ALIAS)
    if loaded is not None and getattr(loaded, "__name__", None) != TARGET:
        raise RuntimeError(
            "the real hyperopt is imported already; call hyperq.install_as_hyperopt() before "
            "anything imports hyperopt (e.g. first thing in your main script)"
        )
    if not any(isinstance(f, HyperoptAliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, HyperoptAliasFinder())
    importlib.import_module(ALIAS)
    os.environ[ENV_FLAG] = "1"
    # Register the hyperq modules loaded already under their hyperopt names. Importing them
    # through the finder instead would make the import system set e.g. ``hyperopt.fmin`` (the
    # module) as an attribute of the package, hiding the ``fmin`` function.
    for name, module in list(sys.modules.items()):
        if name.startswith(TARGET + ".") and module is not None:
            alias = _alias_of(name)
            if alias is not None:
                sys.modules.setdefault(alias, module)


def _alias_of(name: str) -> str | None:
    for alias, target in RENAMED.items():
        if target == name:
            return alias
    return ALIAS + name[len(TARGET):]


def install_from_environment() -> None:
    """Install the alias if ``HYPERQ_AS_HYPEROPT=1`` (called when hyperq is imported)."""
    if os.environ.get(ENV_FLAG) != "1":
        return
    try:
        install_as_hyperopt()
    except RuntimeError as exc:
        logger.warning("%s=1 but the alias cannot be installed: %s", ENV_FLAG, exc)
