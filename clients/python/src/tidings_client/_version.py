"""The installed version, for the user agent and ``--version``."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tidings-client")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
