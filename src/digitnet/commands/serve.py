"""``digitnet serve MODEL``: the drawing page and the JSON API on a local port."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys

from ..web.limits import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    MAX_PIXELS,
)
from .common import CommandError, add_model_argument, load_model, probability

NAME = "serve"
SPARE_DESCRIPTORS = 64  # files the server needs besides its connections
BACKLOG = 128  # connections waiting to be accepted; also how many asyncio accepts at once


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 3600], got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="a web page to draw digits and watch the model read them, with a JSON API",
        description="Serve MODEL: the drawing page at /, POST /api/predict (PNG/JPEG bytes or a "
                    "JSON array of 784 numbers), GET /api/model, the OpenAPI description at "
                    "/openapi.json. Listens on 127.0.0.1 (this machine only) unless --host says "
                    "otherwise.")
    add_model_argument(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s; 0.0.0.0 for every interface, "
                        "which makes the API reachable by others)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                   help="largest request body accepted (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help="largest image (width x height) accepted (default: %(default)s)")
    p.add_argument("--min-confidence", type=probability, default=0.0, metavar="P",
                   help="the page and the API say \"not sure\" when the top probability is below P "
                        "(default: always name a digit)")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help="open connections served at once; more get an immediate 503 (default: %(default)s)")
    p.add_argument("--header-timeout", type=seconds, default=HEADER_TIMEOUT,
                   help="seconds a request's headers may take to arrive (default: %(default)s)")
    p.add_argument("--body-timeout", type=seconds, default=BODY_TIMEOUT,
                   help="seconds a request's body may take to arrive (default: %(default)s)")
    p.add_argument("--keep-alive-timeout", type=seconds, default=KEEP_ALIVE_TIMEOUT,
                   help="seconds an idle connection stays open between requests (default: %(default)s)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web.app import create_app
        from ..web.protocol import guarded_protocol
    except ImportError as exc:
        raise CommandError(f"digitnet serve needs the web extra ({exc.name} is missing): "
                           "pip install 'digitnet[web]'") from None
    if args.max_body_bytes < 1 or args.max_pixels < 1 or args.max_connections < 1:
        raise CommandError("--max-body-bytes, --max-pixels and --max-connections must be positive")
    clf = load_model(args.model)
    if clf.n_features != 784:
        raise CommandError(f"the drawing page reads 28x28 digits; this model takes {clf.n_features} inputs")
    check_servable(clf, args.model)
    max_connections = descriptors_for(args.max_connections)
    app = create_app(clf, max_body_bytes=args.max_body_bytes, max_pixels=args.max_pixels,
                     min_confidence=args.min_confidence)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(host):
        print(f"digitnet serve: warning: listening on {host}: the API is reachable by other machines "
              "on the network, not only this one", file=sys.stderr, flush=True)
    print(f"digitnet: serving {args.model} at http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)
    _log_refusals(args.log_level)
    protocol = guarded_protocol(max_connections=max_connections, header_timeout=args.header_timeout,
                                body_timeout=args.body_timeout)
    config = uvicorn.Config(app, http=protocol, log_level=args.log_level,
                            access_log=args.log_level in ("info", "debug"),
                            timeout_keep_alive=args.keep_alive_timeout, backlog=BACKLOG)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def check_servable(clf: object, model: str) -> None:
    """Refuse to start on a model that cannot answer: one prediction on a blank image must give
    finite probabilities (so no request fails with a 500 later)."""
    import numpy as np

    try:
        probabilities = clf.predict_proba(np.zeros((1, 784), dtype=np.uint8))  # type: ignore[attr-defined]
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        raise CommandError(f"cannot serve {model}: a test prediction fails ({exc})") from None
    if not np.all(np.isfinite(probabilities)):
        raise CommandError(f"cannot serve {model}: a test prediction gives NaN or infinite probabilities")


def descriptors_for(max_connections: int) -> int:
    """The connection cap the process's file-descriptor limit allows (raising the soft limit
    towards the hard one if needed), so that accepting never runs out of descriptors: asyncio
    accepts up to :data:`BACKLOG` connections before the first of them is refused and closed."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to adjust
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + BACKLOG + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        allowed = soft - BACKLOG - SPARE_DESCRIPTORS
        if allowed < 1:
            raise CommandError(f"only {soft} file descriptors are allowed (ulimit -n); serving needs at "
                               f"least {BACKLOG + SPARE_DESCRIPTORS + 1}")
        print(f"digitnet serve: note: only {soft} file descriptors are allowed; serving at most "
              f"{allowed} connections at once", file=sys.stderr)
        return allowed
    return max_connections


def _log_refusals(level: str) -> None:
    """Refused requests and connections as plain lines on stderr ("digitnet serve: refused ...")."""
    logger = logging.getLogger("digitnet.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("digitnet serve: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), or a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
