"""The installed distribution's version, shown by `--version`, /health and connection_ready."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("simutrador")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
