"""``digitnet serve``: a page to draw a digit and watch the network read it, and a JSON API.

Needs the ``web`` extra (FastAPI, uvicorn, python-multipart, Pillow). :func:`create_app`
builds the app for a :class:`~digitnet.classifier.Classifier`; see :mod:`digitnet.web.app`
for the endpoints. FastAPI is imported only when the app is asked for, so ``digitnet``'s
other commands work without the extra.
"""

from __future__ import annotations

from typing import Any

#: What the package gives lazily (not ``__all__``: documentation tools and ``import *`` would
#: then import FastAPI with it).
LAZY = ("create_app", "describe_model")


def __getattr__(name: str) -> Any:
    if name in LAZY:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
