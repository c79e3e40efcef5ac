"""Long-lived child processes of the grader, and the one call that stops them.

The grader keeps one child between gradings: the symbolic worker of theory answers
(`grader.theory.worker`). Its owners, the server's lifespan and the command line, call
`stop_children()` when they exit, by SIGTERM or SIGINT too, so nothing outlives them holding
their port or database file. A child that was never started is not imported (sympy is slow to load).
"""

from __future__ import annotations

import sys


def stop_children() -> None:
    """Stop every long-lived child process that this process started; a no-op when there are none."""
    theory_worker = sys.modules.get("grader.theory.worker")
    if theory_worker is not None:
        theory_worker.stop_worker()
