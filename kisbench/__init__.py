"""kisbench: compare image-text embedding models on known-item search."""

__version__ = "0.1.0"
