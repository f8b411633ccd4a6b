"""The one root of the errors expc reports to a person, each with the exit code the README promises.

Every layer raises its own kind (a spec with errors, a plan file that is not a
plan, a data file that cannot be read, an output that cannot be written, a run
that cannot go on, generation that cannot finish, a design that cannot be
simulated); they all derive from :class:`ExpcError`, which carries
``exit_code``. The command line catches the root once, prints the message as
one escaped line (``error: ...``) and exits with the code, in the manner of
click's ``ClickException``; the Python API lets it propagate.

Exit codes: 1 an invalid spec, plan or data file, or an output that cannot be
written; 2 a usage error; 3 the run could not finish (its state is saved and
the same command resumes).
"""

from __future__ import annotations

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_RUN = 3

__all__ = ["EXIT_INVALID", "EXIT_RUN", "EXIT_USAGE", "ExpcError"]


class ExpcError(Exception):
    """An error for a person: ``str(exc)`` says what is wrong, ``exit_code`` how the process ends."""

    exit_code: int = EXIT_INVALID

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
