"""Courses (scheme and policy) and their assignments.

One server process runs one course (``DGM_COURSE``). ``courses.yaml`` in the assignments folder says,
per course, its title, its built-in grading scheme and which assignment folders it runs, so that the
13-point course and the UPM course come from one checkout (docs/courses.md). A course that the file
does not name runs every assignment folder under the 13-point scheme.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import InvalidInput, NotFound
from server.models import Assignment, Course
from server.scheme import BUILTIN_SCHEMES, THIRTEEN_POINT, CoursePolicy, GradingScheme

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssignmentSpec:
    """What the server needs to know of an assignment folder."""

    name: str
    title: str
    points: float
    rubric: list[dict[str, Any]] = field(default_factory=list)


COURSES_FILE = "courses.yaml"


class CourseConfig(BaseModel):
    """One course of ``courses.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    scheme: str = Field(description="a built-in scheme: " + ", ".join(BUILTIN_SCHEMES))
    assignments: list[str] = Field(min_length=1)


def course_configs(assignments_dir: Path | None) -> dict[str, CourseConfig]:
    """The courses ``courses.yaml`` of the assignments folder describes (none without the file)."""
    from grader.assignment import default_assignments_dir

    path = (assignments_dir or default_assignments_dir()) / COURSES_FILE
    if not path.is_file():
        return {}
    try:
        configs = {str(k): CourseConfig.model_validate(v) for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    for slug, config in configs.items():
        if config.scheme not in BUILTIN_SCHEMES:
            raise InvalidInput(
                f"{path}: course {slug}: unknown scheme {config.scheme!r}; built-in: {list(BUILTIN_SCHEMES)}"
            )
        missing = [a for a in config.assignments if not (path.parent / a / "rubric.yaml").is_file()]
        if missing:
            raise InvalidInput(f"{path}: course {slug}: no assignment folder for {missing}")
    return configs


def get_or_create_course(
    session: Session, *, slug: str, title: str = "", scheme: str | GradingScheme = THIRTEEN_POINT
) -> Course:
    course = session.scalar(select(Course).where(Course.slug == slug))
    if course is not None:
        return course
    if isinstance(scheme, str):
        if scheme not in BUILTIN_SCHEMES:
            raise InvalidInput(f"unknown grading scheme {scheme!r}; built-in: {', '.join(BUILTIN_SCHEMES)}")
        scheme = BUILTIN_SCHEMES[scheme]
    course = Course(
        slug=slug,
        title=title or slug,
        scheme=scheme.model_dump(mode="json"),
        policy=CoursePolicy().model_dump(mode="json"),
    )
    session.add(course)
    session.flush()
    return course


def configured_course(session: Session, *, slug: str, title: str, assignments_dir: Path | None) -> Course:
    """The server's course ``slug``, created on first use with the title and scheme ``courses.yaml`` gives
    it (a non-empty ``title``, from ``DGM_COURSE_TITLE``, wins), else the 13-point scheme."""
    config = course_configs(assignments_dir).get(slug)
    if config is None:
        return get_or_create_course(session, slug=slug, title=title)
    return get_or_create_course(session, slug=slug, title=title or config.title, scheme=config.scheme)


def get_course(session: Session, *, slug: str) -> Course:
    course = session.scalar(select(Course).where(Course.slug == slug))
    if course is None:
        raise NotFound(f"no course {slug!r}")
    return course


def scheme_of(course: Course) -> GradingScheme:
    return GradingScheme.model_validate(course.scheme)


def policy_of(course: Course) -> CoursePolicy:
    return CoursePolicy.model_validate(course.policy)


def update_course(
    session: Session,
    *,
    course: Course,
    scheme: GradingScheme | str | None = None,
    policy: CoursePolicy | None = None,
) -> Course:
    if isinstance(scheme, str):
        if scheme not in BUILTIN_SCHEMES:
            raise InvalidInput(f"unknown grading scheme {scheme!r}; built-in: {', '.join(BUILTIN_SCHEMES)}")
        scheme = BUILTIN_SCHEMES[scheme]
    if scheme is not None:
        course.scheme = scheme.model_dump(mode="json")
    if policy is not None and policy != (old := policy_of(course)):
        from server.services.gradebook import refresh_cells
        from server.services.submissions import refresh_late_flags

        course.policy = policy.model_dump(mode="json")
        for assignment in list_assignments(session, course=course):
            if policy.grace_minutes != old.grace_minutes:
                refresh_late_flags(session, assignment=assignment)  # the late days, then the cells
            else:
                refresh_cells(session, assignment=assignment)  # the counting rule or the penalties changed
    return course


def list_assignments(session: Session, *, course: Course) -> list[Assignment]:
    return list(
        session.scalars(
            select(Assignment).where(Assignment.course_id == course.id).order_by(Assignment.position, Assignment.name)
        )
    )


def get_assignment(session: Session, *, course: Course, name: str) -> Assignment:
    a = session.scalar(select(Assignment).where(Assignment.course_id == course.id, Assignment.name == name))
    if a is None:
        raise NotFound(f"no assignment {name!r}")
    return a


def upsert_assignment(
    session: Session, *, course: Course, spec: AssignmentSpec, deadline: datetime | None = None
) -> Assignment:
    """Create the assignment or refresh its title, points and rubric (the deadline is kept)."""
    a = session.scalar(select(Assignment).where(Assignment.course_id == course.id, Assignment.name == spec.name))
    position = _position(spec.name)
    if a is None:
        a = Assignment(
            course_id=course.id,
            name=spec.name,
            title=spec.title,
            points=spec.points,
            rubric=spec.rubric,
            position=position,
            deadline=deadline,
        )
        session.add(a)
    else:
        a.title, a.points, a.rubric, a.position = spec.title, spec.points, spec.rubric, position
        if deadline is not None:
            set_deadline(session, assignment=a, deadline=deadline)
    session.flush()
    return a


def set_deadline(session: Session, *, assignment: Assignment, deadline: datetime | None) -> Assignment:
    """Set or clear the deadline and recompute the late flags the gradebook relies on."""
    from server.services.submissions import refresh_late_flags

    if deadline is not None and deadline.tzinfo is None:
        raise InvalidInput("deadline: expected a timezone-aware time such as 2026-10-02T23:59:00+03:00")
    assignment.deadline = deadline
    refresh_late_flags(session, assignment=assignment)
    return assignment


def specs_from_grader(assignments_dir: Path | None) -> list[AssignmentSpec]:
    """Read every assignment folder through the grading pipeline's ``list_assignments``."""
    from grader import list_assignments as grader_list_assignments

    specs = []
    for a in grader_list_assignments(assignments_dir):
        rubric = a.rubric
        items = [
            {
                "id": item.id,
                "kind": item.kind,
                "title": item.title,
                "points": float(item.points),
                "task": getattr(item, "task", "") or "",
                **({"guide": item.guide} if item.guide else {}),
                **({"cells": item.cells} if item.cells else {}),
            }
            for item in rubric.items
        ]
        specs.append(AssignmentSpec(name=a.name, title=rubric.title, points=float(rubric.points), rubric=items))
    return specs


def template_path(assignment: Assignment, *, assignments_dir: Path | None) -> Path | None:
    """The blank notebook students start the assignment from, or None when its folder has none."""
    from grader.assignment import assignment_folder, template_file

    path = template_file(assignment_folder(assignment.name, assignments_dir))
    return path if path.is_file() else None


def load_assignments(session: Session, *, course: Course, assignments_dir: Path | None) -> list[Assignment]:
    """Sync the course's assignments with the ``assignments/`` folder: those ``courses.yaml`` lists for the
    course, or every folder when the file does not name the course."""
    config = course_configs(assignments_dir).get(course.slug)
    specs = specs_from_grader(assignments_dir)
    if config is not None:
        specs = [spec for spec in specs if spec.name in config.assignments]
    loaded = [upsert_assignment(session, course=course, spec=s) for s in specs]
    log.info("loaded %d assignments: %s", len(loaded), ", ".join(a.name for a in loaded))
    return loaded


def _position(name: str) -> int:
    digits = "".join(c for c in name if c.isdigit())
    return int(digits) if digits else 1000
