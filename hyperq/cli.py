"""The ``hyperq`` command line (click). Operator commands arrive in their own modules."""
from __future__ import annotations

import logging

import click

from hyperq.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hyperq")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """hyperq: distributed hyperparameter optimization with the hyperopt API."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from hyperq.mongo.cli import worker_command  # noqa: E402  (issue 4: `hyperq worker`)

main.add_command(worker_command)


def worker_main() -> None:
    """The ``hyperq-worker`` console script (same options as ``hyperq worker``)."""
    worker_command.main(prog_name="hyperq-worker")

from hyperq.reporting import report_command  # noqa: E402  (issue 7: `hyperq report`)
main.add_command(report_command)

from hyperq.ops.commands import register as _register_ops  # noqa: E402  (issue 6: operators)

_register_ops(main)

from hyperq.dashboard.cli import dashboard_command  # noqa: E402  (issue 15: `hyperq dashboard`)

main.add_command(dashboard_command)
