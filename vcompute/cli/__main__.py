"""``python -m vcompute.cli``: the same as the ``vcompute`` command."""

from vcompute.cli.app import main

main()
