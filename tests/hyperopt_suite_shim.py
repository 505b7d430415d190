"""pytest plugin (``-p hyperopt_suite_shim``) that runs hyperopt's own tests against hyperq.

It calls ``hyperq.install_as_hyperopt()`` and serves only hyperopt's test packages
(``hyperopt.tests``, ``hyperopt.pyll.tests``) from the unpacked hyperopt wheel named by
``HYPERQ_HYPEROPT_SUITE_DIR``; every other ``hyperopt`` module is hyperq's.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

import hyperq

SUITE_DIR = os.environ["HYPERQ_HYPEROPT_SUITE_DIR"]
TEST_PACKAGES = ("hyperopt.tests", "hyperopt.pyll.tests")


class _SuiteFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not any(fullname == p or fullname.startswith(p + ".") for p in TEST_PACKAGES):
            return None
        base = os.path.join(SUITE_DIR, *fullname.split("."))
        if os.path.isdir(base):
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(base, "__init__.py"), submodule_search_locations=[base])
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        return None


hyperq.install_as_hyperopt()
sys.meta_path.insert(0, _SuiteFinder())


def pytest_sessionfinish(session, exitstatus):
    real = [m for m, mod in sys.modules.items() if (m == "hyperopt" or m.startswith("hyperopt."))
            and not (getattr(mod, "__name__", "") or "").startswith(("hyperq", *TEST_PACKAGES))]
    if real:
        raise RuntimeError(f"modules of the real hyperopt were loaded: {real}")
