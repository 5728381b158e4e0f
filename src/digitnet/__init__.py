"""digitnet: neural networks written from scratch in NumPy, for handwritten digits.

Importing digitnet also registers the seed experiments' quirks (:mod:`digitnet.quirks`) with
the engine's registries, so their names resolve in any process, like the built-in ones.
"""

__version__ = "1.0.0"

from . import quirks as _quirks  # noqa: E402,F401
