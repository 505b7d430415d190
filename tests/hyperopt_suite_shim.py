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


_outcomes: dict[str, str] = {}


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid] = "error"


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = "failed" if report.outcome == "failed" else report.outcome


def pytest_sessionfinish(session, exitstatus):
    real = sorted(m for m, mod in sys.modules.items()
                  if (m == "hyperopt" or m.startswith("hyperopt."))
                  and not (getattr(mod, "__name__", "") or "").startswith(("hyperq",
                                                                           *TEST_PACKAGES)))
    out = os.environ.get("HYPERQ_HYPEROPT_SUITE_REPORT")
    if out:
        import json

        with open(out, "w") as f:
            json.dump({"outcomes": _outcomes, "real_hyperopt_modules": real}, f, indent=0,
                      sort_keys=True)
