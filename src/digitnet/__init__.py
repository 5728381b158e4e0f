"""digitnet: neural networks written from scratch in NumPy, for handwritten digits."""

__version__ = "1.0.0"
