"""Registers the operator commands on the ``hyperq`` click group."""
from __future__ import annotations

import click

from .cli_manage import cancel_command, delete_command, requeue_command
from .cli_view import (
    best_command,
    export_command,
    status_command,
    trials_command,
    worker_health_command,
    workers_command,
)

COMMANDS = [status_command, workers_command, best_command, trials_command, requeue_command,
            cancel_command, delete_command, export_command, worker_health_command]

__all__ = ["COMMANDS", "register"]


def register(group: click.Group) -> None:
    """Add every operator command to ``group``."""
    for command in COMMANDS:
        group.add_command(command)
