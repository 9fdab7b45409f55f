"""The ``iotvideo`` command."""

from iotvideo.cli.main import app, main

__all__ = ["app", "main"]
