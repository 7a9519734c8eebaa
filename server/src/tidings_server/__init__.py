"""tidings-server: delivers resource-change events to webhook endpoints."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tidings-server")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["__version__"]
