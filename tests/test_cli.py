"""The ``hyperq`` console script."""
from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

import hyperq
from hyperq.cli import main


def test_version_and_help():
    runner = CliRunner()
    out = runner.invoke(main, ["--version"])
    assert out.exit_code == 0 and hyperq.__version__ in out.output
    out = runner.invoke(main, ["--help"])
    assert out.exit_code == 0 and "hyperopt API" in out.output


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "hyperq", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert hyperq.__version__ in out.stdout


def test_import_hyperq_does_not_import_optional_backends_or_scipy():
    # Worker processes import hyperq too: keep it light (scipy loads on first TPE use).
    code = ("import sys, hyperq; "
            "print(any(m.startswith(('pyspark', 'pymongo', 'matplotlib', 'pandas', 'scipy')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_hyperopt_module_paths_exist():
    import importlib

    for name in ["hyperq.fmin", "hyperq.base", "hyperq.pyll", "hyperq.pyll.stochastic",
                 "hyperq.early_stop", "hyperq.tpe", "hyperq.rand", "hyperq.anneal",
                 "hyperq.exceptions", "hyperq.hp"]:
        importlib.import_module(name)
    from hyperq.fmin import fmin, space_eval  # noqa: F401
    from hyperq.base import JOB_STATE_DONE, STATUS_OK, Domain, Trials  # noqa: F401
