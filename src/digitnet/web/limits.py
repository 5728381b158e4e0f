"""The web server's limits on what a request may contain and how long a client may take
(``digitnet serve`` can change each)."""

MAX_BODY_BYTES = 2 * 1024 * 1024  # a request body (an uploaded image or a JSON array)
MAX_PIXELS = 4_000_000  # an image's width x height, checked before it is decoded
MAX_CONNECTIONS = 100  # open connections; one more gets an immediate 503
HEADER_TIMEOUT = 10.0  # seconds for a request's headers to arrive
BODY_TIMEOUT = 10.0  # seconds for a request's body to arrive, after its headers
KEEP_ALIVE_TIMEOUT = 5.0  # seconds an idle connection is kept open between requests
