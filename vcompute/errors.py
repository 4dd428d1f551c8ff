"""The two kinds of failure a user sees, each with its exit code.

Every module raises these (never bare exceptions for user mistakes) so the CLI can print one
clear line and exit with a code that means something.
"""

from __future__ import annotations


class VcomputeError(Exception):
    """Base class: ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(VcomputeError):
    """Bad usage or input: a missing file, a wrong shape, an unreachable chain. Exit 2."""

    exit_code = 2


class ProofError(VcomputeError):
    """A proof, verification or exactness check that fails. Exit 1."""

    exit_code = 1
