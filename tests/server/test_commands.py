"""The server's commands (``dgm-grader users add`` etc.), run in-process on a SQLite home."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import stand_in_assignment
from sqlalchemy import select

from server.commands import main
from server.core.db import Database
from server.models import Assignment, Course, Role, User
from server.services import users


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DGM_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("DGM_DATABASE_URL", raising=False)
    monkeypatch.setenv("DGM_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("DGM_ARGON2_TIME_COST", "1")
    return tmp_path / "var"


def _db(home: Path) -> Database:
    return Database(f"sqlite:///{(home / 'dgm.sqlite3').resolve()}")


def test_users_roster_tokens_and_course(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["users", "add", "tina", "--role", "ta", "--password-stdin"]) == 0
    assert main(["users", "add", "tina"]) == 2
    assert "already exists" in capsys.readouterr().err

    roster = tmp_path / "roster.csv"
    roster.write_text("username,full_name,email\nalice,Alice A,alice@example.org\nbob,Bob B,\n")
    assert main(["roster", "import", str(roster)]) == 0
    assert "2 created, 0 updated" in capsys.readouterr().out
    roster.write_text("username,role\nalice,wizard\n")
    assert main(["roster", "import", str(roster)]) == 2
    assert "unknown role 'wizard'" in capsys.readouterr().err

    assert main(["users", "token", "alice", "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    db = _db(home)
    with db.session() as s:
        assert users.user_for_token(s, token=token).username == "alice"  # type: ignore[union-attr]
        tina = s.scalars(select(User).where(User.username == "tina")).one()
        assert tina.role == Role.ta and tina.password_hash and tina.password_hash.startswith("$argon2id$")
        assert s.scalars(select(User).where(User.username == "alice")).one().full_name == "Alice A"

    assert main(["course", "scheme", "15-point"]) == 0
    assert main(["course", "policy", "--counting", "best", "--late-penalty-per-day", "0.2"]) == 0
    with db.session() as s:
        course = s.scalars(select(Course)).one()
        assert course.scheme["homework_points"] == 15 and course.policy["counting"] == "best"
        assert course.policy["late_penalty_per_day"] == 0.2
    db.dispose()


def test_assignments_load_and_deadline(home: Path, tmp_path: Path) -> None:
    root = stand_in_assignment.write(tmp_path / "assignments")
    assert main(["assignments", "load", "--dir", str(root)]) == 0
    assert main(["assignments", "deadline", "tiny", "2026-10-02T23:59:00+03:00"]) == 0
    assert main(["assignments", "deadline", "hw9", "none"]) == 2
    db = _db(home)
    with db.session() as s:
        a = s.scalars(select(Assignment)).one()
        assert (a.name, a.points, [i["id"] for i in a.rubric]) == ("tiny", 13, ["t_double", "square", "discussion"])
        assert a.deadline is not None and a.deadline.isoformat() == "2026-10-02T20:59:00+00:00"
    db.dispose()


REPO_ASSIGNMENTS = Path(__file__).resolve().parents[2] / "assignments"


@pytest.mark.parametrize(
    ("course", "scheme", "assignments"),
    [("dgm", "13-point", {"hw1", "hw2", "hw3", "hw4", "hw5", "hw6"}), ("upm", "10-point", {"upm_cvae"})],
)
def test_each_course_of_courses_yaml_gets_its_scheme_and_assignments(
    home: Path, monkeypatch: pytest.MonkeyPatch, course: str, scheme: str, assignments: set[str]
) -> None:
    """One checkout, two courses: DGM_COURSE picks the title, scheme and assignment folders courses.yaml gives."""
    monkeypatch.setenv("DGM_COURSE", course)
    monkeypatch.setenv("DGM_ASSIGNMENTS_DIR", str(REPO_ASSIGNMENTS))
    assert main(["assignments", "load"]) == 0
    db = _db(home)
    with db.session() as s:
        row = s.scalars(select(Course)).one()
        assert (row.slug, row.scheme["name"]) == (course, scheme)
        assert set(s.scalars(select(Assignment.name))) == assignments
    db.dispose()


def test_a_course_that_courses_yaml_does_not_name_runs_every_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "assignments"
    stand_in_assignment.write(folder)
    monkeypatch.setenv("DGM_ASSIGNMENTS_DIR", str(folder))
    monkeypatch.setenv("DGM_COURSE", "elsewhere")
    assert main(["assignments", "load"]) == 0
    with _db(home).session() as s:
        assert s.scalars(select(Course)).one().scheme["name"] == "13-point"
        assert s.scalars(select(Assignment)).all()

    (folder / "courses.yaml").write_text("elsewhere: {title: T, scheme: 12-point, assignments: [hw1]}\n")
    assert main(["assignments", "load"]) == 2
    assert "unknown scheme '12-point'" in capsys.readouterr().err
