"""Who a user is. A module of its own so that the command line can offer the roles without SQLAlchemy."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    student = "student"
    ta = "ta"
    admin = "admin"
