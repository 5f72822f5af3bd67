"""The package version, defined once (read by pyproject.toml and at run time)."""

__version__ = "0.1.0"
