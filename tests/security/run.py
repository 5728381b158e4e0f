"""Run one reader on one file, the way the command line does: ``python -m tests.security.run
KIND PATH`` prints ``ok`` (exit 0) or one line ``error: ...`` (exit 1) for a user error;
anything else keeps its traceback. The security tests run it in a limited subprocess."""

from __future__ import annotations

import sys

try:
    from digitnet.errors import DigitnetError
except ImportError:  # digitnet 1.0 (the "before" of tests.security.measure) had no errors module
    DigitnetError = ValueError  # its readers raised ValueError subclasses for bad files


def read(kind: str, path: str) -> None:
    if kind == "pkl":
        from digitnet.data.pickled import read_mnist_pkl

        read_mnist_pkl(path)
    elif kind == "idx":
        from digitnet.data.idx import read_idx

        read_idx(path)
    elif kind == "keras":
        from digitnet.data.formats import read_keras_npz

        read_keras_npz(path)
    elif kind == "model":
        from digitnet.classifier import Classifier

        Classifier.load(path)
    else:
        raise SystemExit(f"unknown reader {kind!r}")


def main(argv: list[str]) -> int:
    kind, path = argv
    try:
        read(kind, path)
    except (DigitnetError, OSError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
