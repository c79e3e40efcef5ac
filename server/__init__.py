"""The DGM Grader course server: uploads, grading queue, gradebook (FastAPI + SQLAlchemy + Alembic).

``create_app`` and ``Settings`` are imported lazily so a grading worker does not load the web stack.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"create_app": "server.main", "Settings": "server.core.config", "Worker": "server.worker"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'server' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
