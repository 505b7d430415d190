"""A live web dashboard for experiments and workers: ``hyperq dashboard --mongo URI`` or
``hyperq dashboard --trials-file PATH`` (``pip install 'hyperq[dashboard]'``).

Modules: ``sources`` (reading trials from MongoDB or a trials file, incrementally),
``live`` (the shared, incrementally refreshed view of one experiment), ``security`` (the
token, sign-in and where the server may listen), ``app`` (the Starlette app and its JSON API),
``cli`` (the click command) and ``static/`` (the page, its script and style; nothing is fetched
from the network). See docs/dashboard.md.
"""
from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """The Starlette app (see :func:`hyperq.dashboard.app.create_app`); imported lazily so that
    ``hyperq --help`` works without the ``dashboard`` extra."""
    from .app import create_app as make

    return make(*args, **kwargs)
