"""moorage: a Python package index that keeps what it has served reproducible."""

__version__ = "0.1.0"
