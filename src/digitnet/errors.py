"""The one base class for everything a user can cause, and can fix.

A bad option, a file that is missing, corrupt or hostile, data that cannot be found, a
directory that cannot be written: each is a :class:`DigitnetError` (or an ``OSError`` from
the operating system), and the command line prints it as one line and exits 1. Anything
else is a bug in digitnet and keeps its traceback.

This module imports nothing, so every layer of digitnet above the engine can use it.
"""

from __future__ import annotations


class DigitnetError(Exception):
    """Something the user asked for cannot be done; the message says what and how to fix it."""


class SpecError(DigitnetError, ValueError):
    """A run spec (a TOML recipe, a ``config.json``, command-line flags or estimator
    parameters) is invalid; the message names the key."""


class FileWriteError(DigitnetError, OSError):
    """A file or directory could not be written (read-only, disk full, permission denied).

    ``errno`` and ``filename`` are set as on any ``OSError``; the message is one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ExportError(DigitnetError, ValueError):
    """A model cannot be exported (a layer or loss the format has no translation for, or a
    missing optional package); the message names what and why."""
