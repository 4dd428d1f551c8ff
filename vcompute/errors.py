"""The kinds of failure a user sees, each with its exit code.

Every module raises these (never bare exceptions for user mistakes) so the CLI can print one
clear line and exit with a code that means something:

    0  success
    1  a proof, verification or exactness check failed            (ProofError)
    2  bad usage or input                                        (UsageError)
    3  the proof was made and verified, an optional later stage failed (the proof is kept;
       summary.json says which stage and why)                    (PARTIAL)
   70  an internal error: a bug in vcompute                       (INTERNAL)
  130  interrupted (Ctrl-C or SIGTERM)
"""

from __future__ import annotations

#: exit code: the proof landed but an optional stage (EVM verifier, engine check, ...) failed
PARTIAL = 3
#: exit code: an internal error (sysexits' EX_SOFTWARE), distinct from 1 and 2
INTERNAL = 70
#: exit code: interrupted
INTERRUPTED = 130


class VcomputeError(Exception):
    """Base class: ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(VcomputeError):
    """Bad usage or input: a missing file, a wrong shape, an unreachable chain. Exit 2."""

    exit_code = 2


class ProofError(VcomputeError):
    """A proof, verification or exactness check that fails. Exit 1."""

    exit_code = 1


def first_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an exception's text (EZKL and web3 errors are multi-line)."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else (type(exc).__name__ if isinstance(exc, BaseException) else "")
    return line[:limit]
