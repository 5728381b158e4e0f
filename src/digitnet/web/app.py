"""The ``digitnet serve`` web app: a drawing page and a JSON prediction API.

Endpoints (FastAPI; its OpenAPI description is at ``/openapi.json``, browsable at ``/docs``):

- ``GET /`` - the page: draw a digit (or whatever the model's dataset holds: its heading
  follows it), watch the network read it.
- ``GET /api/model`` - what the model is (layers, sizes, classes, normalisation, metrics).
- ``POST /api/predict`` - the body is one of
    * ``image/png`` or ``image/jpeg``: the image's bytes, prepared like MNIST by
      :func:`digitnet.data.images.mnist_like` (any size, any background);
    * ``multipart/form-data`` with one file field named ``file`` (a PNG or JPEG);
    * ``application/json``: an array of 784 numbers in 0-255, an MNIST-like image
      (white ink on black, row by row) given to the network as it is.

  The answer is ``{"digit", "name", "classes", "probabilities", "image", "hidden",
  "feature_maps"}``: the predicted class and its name, one probability per class, the 28x28
  image the network saw (0-255), the output of every hidden layer on feature vectors, and for a
  convolutional network the maps each convolution computes (after its batch norm and
  activation), each layer's maps as base64 bytes, one byte per value (see
  :class:`FeatureMapsOut`).

Bad input gets a 4xx answer ``{"detail": "what was wrong"}`` and the server carries on:
400 empty or unreadable body, 413 body over ``max_body_bytes`` or image over
``max_pixels``, 415 another content type, 422 a JSON array of the wrong length, with NaN
or out of range, or an image with no ink. Each refusal is one line on the
``digitnet.serve`` logger; a client that goes away mid-request is not an error (no
traceback). The connection limits (a cap, header and body deadlines) are in
:mod:`digitnet.web.protocol`.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..classifier import Classifier
from ..data import images
from ..data.datasets import CATALOGUE
from ..nn import Conv2D
from .limits import MAX_BODY_BYTES, MAX_PIXELS

log = logging.getLogger("digitnet.serve")
STATIC_DIR = Path(__file__).with_name("static")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
IMAGE_FORMATS = ("PNG", "JPEG")


class FeatureMapsOut(BaseModel):
    """The maps one convolution computes for the image, quantised to one byte per value."""

    title: str = Field(description="which convolution, and the layers after it the maps come from")
    channels: int
    height: int
    width: int
    signed: bool = Field(description="false: byte 0-255 is value 0 to `scale`; true (maps with "
                                     "negative values, after tanh): byte 0-255 is -scale to +scale")
    scale: float = Field(description="the largest absolute value among the maps")
    data: str = Field(description="base64 of channels x height x width bytes, map after map, row by row")


class Prediction(BaseModel):
    """One prediction, with what the page shows."""

    digit: int | None = Field(description="the predicted class (a digit for MNIST), or null when the model "
                                          "is not sure (its top probability is below the server's "
                                          "min_confidence)")
    best_guess: int = Field(description="the most probable class, sure or not")
    sure: bool = Field(description="whether the top probability reaches min_confidence")
    name: str = Field(description="the most probable class's name (\"7\", or \"Trouser\" for Fashion-MNIST)")
    classes: list[int] = Field(description="the class of each probability")
    probabilities: list[float] = Field(description="one per class, summing to 1")
    image: list[list[int]] = Field(description="the 28x28 image the network saw, 0-255, white on black")
    hidden: list[list[float]] = Field(description="output of each hidden layer on feature vectors, "
                                                  "one list per layer")
    feature_maps: list[FeatureMapsOut] = Field(default_factory=list,
                                               description="a convolutional network's maps, one entry "
                                                           "per convolution (none for an MLP)")


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A PNG or JPEG image (raw bytes or a multipart field 'file'), or a JSON "
                       "array of 784 pixel values 0-255 (white on black, row by row).",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {"schema": {
                "type": "array", "minItems": 784, "maxItems": 784,
                "items": {"type": "number", "minimum": 0, "maximum": 255}}},
        },
    },
}
_ERRORS = {code: {"description": text, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"detail": {"type": "string"}}}}}}
    for code, text in ((400, "empty or unreadable body"),
                       (413, "body or image too large"),
                       (415, "unsupported content type"),
                       (422, "wrong JSON array, or an image with no ink"))}


def describe_model(clf: Classifier) -> dict[str, Any]:
    """A JSON-able summary of a classifier for ``GET /api/model`` and the page: ``sizes`` of
    the dense layers, and for a convolutional network ``convolutions`` (maps per convolution)
    and ``description``, the network in one line."""
    layers = clf.model.layers
    linear = [layer for layer in layers if hasattr(layer, "out_features")]
    sizes = [clf.n_features] + [layer.out_features for layer in linear]
    activations = sorted({layer.name for layer in layers[:-1] if layer.activation})
    convolutions = [layer.out_channels for layer in layers if isinstance(layer, Conv2D)]
    dense = "-".join(map(str, sizes))
    description = dense if not convolutions else \
        f"1x28x28, convolutions {'-'.join(map(str, convolutions))}, dense {'-'.join(map(str, sizes[1:]))}"
    return {
        "sizes": sizes,
        "hidden_sizes": sizes[1:-1],
        "convolutions": convolutions,
        "description": f"{description} {'/'.join(activations)}".strip(),
        "shapes": [list(shape) for shape in clf.model.shapes()],
        "activations": activations,
        "layers": [layer.config() for layer in layers],
        "parameters": clf.model.num_parameters,
        "classes": [int(c) for c in clf.classes],
        "class_names": clf.class_names,
        "dataset": dataset_heading(clf.dataset),
        "loss": type(clf.loss).__name__,
        "normalization": clf.normalizer.to_dict(),
        "metrics": clf.metadata.get("metrics", {}),
        "digitnet_version": __version__,
    }


def dataset_heading(name: str) -> dict[str, str]:
    """The dataset a model was trained on, for the page: its name, title and what to draw
    (``{"name": "fashion-mnist", "title": "Fashion-MNIST", "noun": "fashion item",
    "heading": "Draw a fashion item"}``)."""
    info = CATALOGUE.get(name)
    title, noun = (info.title, info.noun) if info is not None else (name, "character")
    article = "an" if noun[:1].lower() in "aeiou" else "a"
    return {"name": name, "title": title, "noun": noun, "heading": f"Draw {article} {noun}"}


def render_page(classifier: Classifier) -> str:
    """The drawing page with its heading, title and canvas label following the model's dataset."""
    ds = dataset_heading(classifier.dataset)
    heading, noun = html.escape(ds["heading"]), html.escape(ds["noun"])
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    trained = "" if ds["name"] == "mnist" else f", trained on {html.escape(ds['title'])},"
    return (page.replace("<title>digitnet - draw a digit</title>", f"<title>digitnet - {heading[0].lower()}"
                                                                    f"{heading[1:]}</title>")
                .replace("<h1>Draw a digit</h1>", f"<h1>{heading}</h1>")
                .replace("NumPy read it\n", f"NumPy{trained} read it\n")
                .replace("draw one digit, 0 to 9", f"draw one {noun}"))


def encode_feature_maps(title: str, maps: np.ndarray) -> dict[str, Any]:
    """One image's maps ``(channels, height, width)`` as :class:`FeatureMapsOut`'s JSON: one
    byte per value, scaled by the largest absolute value (signed maps around byte 127.5)."""
    maps = np.nan_to_num(maps.astype(np.float64))
    scale = float(np.abs(maps).max())
    signed = bool(maps.min() < 0)
    unit = maps / scale if scale > 0 else maps
    levels = 127.5 * (unit + 1) if signed else 255 * unit
    data = np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    c, h, w = maps.shape
    return {"title": title, "channels": c, "height": h, "width": w, "signed": signed,
            "scale": round(scale, 6), "data": base64.b64encode(data.tobytes()).decode("ascii")}


def _json_pixels(body: bytes, n_features: int) -> np.ndarray:
    """A JSON body -> ``float64 (n_features,)`` pixels, or an HTTP 400/422 explaining why not."""
    try:
        values = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise HTTPException(400, f"the body is not valid JSON ({reason})") from None
    if not isinstance(values, list):
        raise HTTPException(422, f"expected a JSON array of {n_features} numbers, "
                                 f"got a JSON {type(values).__name__}")
    if len(values) != n_features:
        raise HTTPException(422, f"expected a JSON array of {n_features} numbers (a 28x28 image, "
                                 f"row by row), got {len(values)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise HTTPException(422, "every pixel must be a number (null, strings, lists and "
                                 "booleans are not)")
    try:
        x = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise HTTPException(422, "pixels must be in 0-255; a number is too large") from None
    if not np.isfinite(x).all():
        raise HTTPException(422, "pixels must be finite numbers: NaN or Infinity found")
    if x.min() < 0 or x.max() > 255:
        raise HTTPException(422, f"pixels must be in 0-255 (white ink on black, like MNIST), "
                                 f"got values from {x.min():g} to {x.max():g}")
    return x


def create_app(classifier: Classifier, *, max_body_bytes: int = MAX_BODY_BYTES,
               max_pixels: int = MAX_PIXELS, title: str = "digitnet", min_confidence: float = 0.0) -> FastAPI:
    """The FastAPI app serving ``classifier``.

    ``max_body_bytes`` bounds a request body (checked against Content-Length and while
    reading); ``max_pixels`` bounds an image's width x height before it is decoded.
    """
    if classifier.n_features != images.FIELD * images.FIELD:
        raise ValueError(f"the web page draws 28x28 digits; this model takes "
                         f"{classifier.n_features} inputs")
    app = FastAPI(title=f"{title} - draw a digit", version=__version__,
                  description="Predict handwritten digits with a network written from scratch "
                              "in NumPy.")
    model_info = describe_model(classifier)

    def infer(pixels: np.ndarray) -> dict[str, Any]:
        """``pixels (784,)`` on the 0-255 scale -> the prediction's JSON."""
        x = pixels.reshape(1, -1)  # the model is in evaluation mode: every forward pass has its own arrays
        seen = classifier.read(x)  # one forward pass
        probs = seen.probabilities[0]
        k = int(np.argmax(probs))
        best, sure = int(classifier.classes[k]), bool(probs[k] >= min_confidence)
        return {
            "digit": best if sure else None,
            "best_guess": best,
            "sure": sure,
            "name": model_info["class_names"][k],
            "classes": model_info["classes"],
            "probabilities": [round(float(p), 6) for p in probs],
            "image": np.rint(pixels).astype(np.int64).reshape(28, 28).tolist(),
            "hidden": [np.round(h[0].astype(np.float64), 4).tolist() for h in seen.hidden],
            "feature_maps": [encode_feature_maps(f.title, f.maps[0]) for f in seen.feature_maps],
        }

    def from_image(data: bytes) -> dict[str, Any]:
        try:
            pixels = images.mnist_like(data, max_pixels=max_pixels, formats=IMAGE_FORMATS)
        except images.NoInkError as exc:
            raise HTTPException(422, str(exc)) from None
        except images.ImageTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        except images.ImageError as exc:
            raise HTTPException(400, str(exc)) from None
        return infer(pixels.reshape(-1).astype(np.float64))

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise HTTPException(400, f"bad Content-Length header {length!r}") from None
            if declared > max_body_bytes:
                raise HTTPException(413, f"the body is {declared:,} bytes; the limit is "
                                         f"{max_body_bytes:,} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    raise HTTPException(413, f"the body is over the limit of {max_body_bytes:,} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise _ClientGone() from None
        body = b"".join(chunks)
        if not body:
            raise HTTPException(400, "the body is empty: send a PNG or JPEG image, or a JSON "
                                     "array of 784 numbers")
        return body

    page_html = render_page(classifier)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/api/model", summary="Describe the model")
    def model() -> dict[str, Any]:
        return model_info | {"limits": {"max_body_bytes": max_body_bytes, "max_pixels": max_pixels},
                             "min_confidence": min_confidence}

    @app.post("/api/predict", response_model=Prediction, summary="Predict the digit in an image",
              openapi_extra=_BODY_DOC, responses=_ERRORS)
    async def predict(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = ("image/png, image/jpeg, multipart/form-data (field 'file') or "
                    "application/json (784 numbers)")
        if ctype not in IMAGE_TYPES and ctype not in ("application/json", "multipart/form-data"):
            raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}; send {accepted}")
        body = await read_body(request)
        if ctype == "application/json":
            pixels = await run_in_threadpool(_json_pixels, body, classifier.n_features)
            return await run_in_threadpool(infer, pixels)
        if ctype == "multipart/form-data":
            body = await _multipart_file(request, body)
            return await run_in_threadpool(from_image, body)
        return await run_in_threadpool(from_image, body)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        """One plain log line per refused request (none for a client that went away)."""
        if isinstance(exc, _ClientGone):
            return Response(status_code=400)  # nobody is there to read it
        client = request.client
        who = f"{client.host}:{client.port}" if client else "a client"
        log.warning("refused %s %s from %s: %d %s", request.method, request.url.path, who,
                    exc.status_code, " ".join(str(exc.detail).split()))
        return await http_exception_handler(request, exc)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class _ClientGone(HTTPException):
    """The client closed the connection before its request body arrived."""

    def __init__(self) -> None:
        super().__init__(400, "the client went away")


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The bytes of the multipart field ``file`` in an already size-checked ``body``."""

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # Starlette's MultiPartException, python-multipart's errors
        raise HTTPException(400, f"cannot parse the multipart body ({getattr(exc, 'detail', exc)})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "the multipart body needs a file field named 'file'")
    data = await upload.read()
    await form.close()
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    return data
