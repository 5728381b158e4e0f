"""``digitnet serve MODEL``: the drawing page and the JSON API on a local port."""

from __future__ import annotations

import argparse
import socket

from ..web.limits import MAX_BODY_BYTES, MAX_PIXELS
from .common import CommandError, add_model_argument, load_model, probability

NAME = "serve"


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
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
                   help="address to listen on (default: %(default)s; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                   help="largest request body accepted (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help="largest image (width x height) accepted (default: %(default)s)")
    p.add_argument("--min-confidence", type=probability, default=0.0, metavar="P",
                   help="the page and the API say \"not sure\" when the top probability is below P "
                        "(default: always name a digit)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web.app import create_app
    except ImportError as exc:
        raise CommandError(f"digitnet serve needs the web extra ({exc.name} is missing): "
                           "pip install 'digitnet[web]'") from None
    if args.max_body_bytes < 1 or args.max_pixels < 1:
        raise CommandError("--max-body-bytes and --max-pixels must be positive")
    clf = load_model(args.model)
    if clf.n_features != 784:
        raise CommandError(f"the drawing page reads 28x28 digits; this model takes {clf.n_features} inputs")
    app = create_app(clf, max_body_bytes=args.max_body_bytes, max_pixels=args.max_pixels,
                     min_confidence=args.min_confidence)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"digitnet: serving {args.model} at http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level,
                            access_log=args.log_level in ("info", "debug"))
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


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
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
