"""The ``digitnet`` command line: assembles one subcommand per module of
:mod:`digitnet.commands` and reports what goes wrong.

    digitnet train [options]          train a network, write a run directory
    digitnet evaluate MODEL           accuracy, confusion matrix, per-class scores
    digitnet predict MODEL IMAGE...   your own images: the digit and its probabilities
    digitnet reproduce NAME           a seed experiment, as the seed did it or improved
    digitnet serve MODEL              the drawing page and JSON API
    digitnet report RUN_DIR           figures and report.html
    digitnet compare RUN_DIR...       several runs side by side
    digitnet summary MODEL            its layers, output shapes and parameter counts
    digitnet export MODEL --onnx F    the model as ONNX, raw pixels to labels and probabilities

Anything a user can cause (a :class:`~digitnet.errors.DigitnetError`, or an ``OSError`` such
as a full disk) prints one line and exits 1; a closed pipe exits quietly; Ctrl-C exits 130
(after ``train`` has saved its checkpoint and said how to resume). Anything else is a bug in
digitnet and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__, heap
from .commands import COMMANDS
from .errors import DigitnetError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 130, 141


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``digitnet`` parser and each command's own parser, by name."""
    parser = argparse.ArgumentParser(
        prog="digitnet", description="Neural networks from scratch in NumPy, for handwritten digits.")
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    return parser, dict(sub.choices)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; options may follow a command's positional arguments
    (``digitnet predict MODEL --json a.png``)."""
    parser, commands = build_parser()
    argv = list(argv)
    if argv and argv[0] in commands:
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        raise SystemExit(EXIT_USAGE)
    return args


def one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return message or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the digitnet process itself (not a caller's): keep freed memory for reuse
        heap.keep_freed_memory()
    args = parse(sys.argv[1:] if argv is None else argv)
    name = f"digitnet {args.command}"
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:  # `digitnet evaluate ... | head`: the reader has gone; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except KeyboardInterrupt as exc:
        resume = getattr(exc, "resume_command", None)
        detail = f" ({exc})" if str(exc) else ""
        how = f"; resume with: {resume}" if resume else ""
        print(f"{name}: interrupted{detail}{how}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DigitnetError as exc:
        if type(exc).__name__ == "DataNotFoundError":  # a how-to: keep its lines
            print(f"{name}: error: {exc}", file=sys.stderr)
        else:
            print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"{name}: error: {where}{exc.strerror or one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
