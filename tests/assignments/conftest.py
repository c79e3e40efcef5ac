"""The golden tests grade notebooks in threads: the theory worker is started once here, in the main thread,
before any grading thread runs numpy (see grader.theory.worker.start_worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from grader.theory.worker import start_worker, stop_worker


@pytest.fixture(scope="session", autouse=True)
def theory_worker() -> Iterator[None]:
    start_worker()
    yield
    stop_worker()
