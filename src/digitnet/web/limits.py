"""The web server's limits on what a request may contain (``digitnet serve`` can change them)."""

MAX_BODY_BYTES = 2 * 1024 * 1024  # a request body (an uploaded image or a JSON array)
MAX_PIXELS = 4_000_000  # an image's width x height, checked before it is decoded
