"""The ``tidings`` admin command. Importing ``tidings_client`` does not load this package (nor click or rich)."""

from tidings_client.cli.main import main

__all__ = ["main"]
