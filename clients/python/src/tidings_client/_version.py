"""The installed version, for the user agent; looked up on first use, since the lookup costs ~60 ms."""

from functools import cache


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tidings-client")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"
