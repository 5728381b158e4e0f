"""digitnet: neural networks written from scratch in NumPy, for handwritten digits.

Importing digitnet also registers the seed experiments' quirks (:mod:`digitnet.quirks`) with
the engine's registries, so their names resolve in any process, like the built-in ones.
"""

__version__ = "1.0.0"

import os as _os

# OpenBLAS's idle threads spin for about 2^28 cycles after every product before they sleep,
# on the cores that the elementwise work, the optimiser's threads and the augmentation need
# next. The shortest wait (2^4) made mlp-best (784-1024-1024-10, augmented) about 17% faster
# here, and the small default 784-256-10 about 9% slower (its products come every few hundred
# us, so its threads do better spinning); docs/guide.md, "Speed". Read when OpenBLAS loads,
# so it only takes effect when digitnet is imported before NumPy (as the command line does);
# a value already set is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import quirks as _quirks  # noqa: E402,F401
