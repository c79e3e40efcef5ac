"""The append-only audit log of grade changes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.models import AuditLog, User


def _fmt(value: float | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def record(
    session: Session,
    *,
    actor: User | str,
    student_id: int | None,
    entity: str,
    key: str,
    old: float | str | None,
    new: float | str | None,
    reason: str,
) -> AuditLog | None:
    """Append one change; nothing is written when the value did not change."""
    old_s, new_s = _fmt(old), _fmt(new)
    if old_s == new_s:
        return None
    entry = AuditLog(
        actor_id=actor.id if isinstance(actor, User) else None,
        actor=actor.username if isinstance(actor, User) else actor,
        student_id=student_id,
        entity=entity,
        key=key,
        old_value=old_s,
        new_value=new_s,
        reason=reason,
    )
    session.add(entry)
    return entry
