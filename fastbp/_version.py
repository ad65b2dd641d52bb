"""fastbp's version, in one place (the package, the kernel cache's key)."""

__version__ = "0.1.0"
