"""The ``vcompute`` command line: a thin typer layer over :mod:`vcompute.api`."""

from vcompute.cli.app import app, main

__all__ = ["app", "main"]
