"""Server commands of ``dgm-grader``: serve, worker, users, roster, assignments, course, migrate.

``register(subparsers)`` adds them to the main parser (``grader/cli.py``); ``python -m server`` runs
them on their own. Handlers return an exit status. Only the handlers import the server's modules
(SQLAlchemy, pydantic, FastAPI): ``dgm-grader --help`` should not wait for them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from server.errors import DomainError
from server.roles import Role

if TYPE_CHECKING:
    from server.core.config import Settings
    from server.core.db import Database
    from server.core.security import Passwords

log = logging.getLogger(__name__)

DEMO_USERS = (
    ("student", Role.student, "student-demo"),
    ("ta", Role.ta, "ta-demo-pw"),
    ("admin", Role.admin, "admin-demo"),
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the server's commands to the ``dgm-grader`` parser."""
    p = subparsers.add_parser("serve", help="run the course server (SQLite + in-process worker by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--demo", action="store_true", help="create a demo course with hw1 and demo users")
    p.add_argument("--no-worker", action="store_true", help="do not grade in this process")
    p.set_defaults(func=_handle(cmd_serve))

    p = subparsers.add_parser("worker", help="a grading worker for a shared (PostgreSQL) database")
    p.add_argument("--exit-when-idle", action="store_true", help="stop once nothing is queued or running")
    p.add_argument("--id", dest="worker_id", help="worker id shown in leases (default host:pid:random)")
    p.set_defaults(func=_handle(cmd_worker))

    p = subparsers.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(func=_handle(cmd_migrate))

    users_p = subparsers.add_parser("users", help="manage users").add_subparsers(dest="users_command", required=True)
    p = users_p.add_parser("add", help="create a user")
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.student.value)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--full-name", default="")
    p.add_argument("--email")
    p.set_defaults(func=_handle(cmd_users_add))
    p = users_p.add_parser("passwd", help="set a user's password")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_handle(cmd_users_passwd))
    p = users_p.add_parser("token", help="create a long-lived API token (printed once)")
    p.add_argument("username")
    p.add_argument("--name", default="ci")
    p.add_argument("--days", type=float, help="expires after this many days (default: never)")
    p.set_defaults(func=_handle(cmd_users_token))

    roster_p = subparsers.add_parser("roster", help="import students").add_subparsers(
        dest="roster_command", required=True
    )
    p = roster_p.add_parser("import", help="create/update users from a CSV with a username column")
    p.add_argument("csv", type=Path)
    p.set_defaults(func=_handle(cmd_roster_import))

    assign_p = subparsers.add_parser("assignments", help="course assignments").add_subparsers(
        dest="assignments_command", required=True
    )
    p = assign_p.add_parser("load", help="sync assignments from the assignments/ folder")
    p.add_argument("--dir", type=Path, help="assignments folder (default: DGM_ASSIGNMENTS_DIR or ./assignments)")
    p.set_defaults(func=_handle(cmd_assignments_load))
    p = assign_p.add_parser("deadline", help="set an assignment's deadline (ISO 8601; 'none' clears it)")
    p.add_argument("name")
    p.add_argument("when")
    p.set_defaults(func=_handle(cmd_assignments_deadline))

    course_p = subparsers.add_parser("course", help="grading scheme and policy").add_subparsers(
        dest="course_command", required=True
    )
    p = course_p.add_parser("show", help="print the course settings")
    p.set_defaults(func=_handle(cmd_course_show))
    p = course_p.add_parser("scheme", help="switch to a built-in grading scheme")
    p.add_argument("name", help="the scheme's name, e.g. 13-point or 15-point")
    p.set_defaults(func=_handle(cmd_course_scheme))
    p = course_p.add_parser("policy", help="change which submission counts and the late policy")
    p.add_argument("--counting", choices=["latest_on_time", "latest", "best"])
    p.add_argument("--late-penalty-per-day", type=float)
    p.add_argument("--late-max-days", type=int)
    p.add_argument("--grace-minutes", type=float)
    p.set_defaults(func=_handle(cmd_course_policy))


def _handle(fn: Any) -> Any:
    """Turn domain errors into a one-line message and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except DomainError as exc:
            print(f"dgm-grader: error: {exc.message}", file=sys.stderr)
            return 2

    run.__name__ = fn.__name__
    return run


def _ready() -> tuple[Settings, Database]:
    from server.core.config import Settings
    from server.core.db import Database

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    db.migrate()
    return settings, db


def _valid(model: Any, **fields: Any) -> Any:
    """``model(**fields)``, or a one-line DomainError saying which field is wrong."""
    from pydantic import ValidationError

    from server.schemas import validation_message

    try:
        return model(**fields)
    except ValidationError as exc:
        raise DomainError(validation_message(exc)) from None


def _passwords(settings: Settings) -> Passwords:
    from server.core.security import Passwords

    return Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)


def _read_password(from_stdin: bool) -> str:
    password = sys.stdin.readline().rstrip("\r\n") if from_stdin else getpass.getpass("Password: ")
    if len(password) < 8:
        raise DomainError("the password must have at least 8 characters")
    return password


def _open_course(session: Any, settings: Settings) -> Any:
    """The server's course (created on first use as assignments/courses.yaml describes it)."""
    from server.services import courses

    return courses.configured_course(
        session, slug=settings.course, title=settings.course_title, assignments_dir=settings.assignments_dir
    )


def _course(db: Database, settings: Settings) -> Any:
    with db.session() as s:
        return _open_course(s, settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings, _db = _ready()
    print(f"database is up to date: {_redact(settings.effective_database_url)}")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from server.services import users

    settings, db = _ready()
    password = _read_password(True) if args.password_stdin else None
    with db.session() as s:
        users.create_user(
            s,
            username=args.username,
            role=Role(args.role),
            password=password,
            full_name=args.full_name,
            email=args.email,
            passwords=_passwords(settings),
        )
    print(f"created {args.role} {args.username}" + ("" if password else " (no password: API tokens only)"))
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from server.services import users

    settings, db = _ready()
    password = _read_password(args.password_stdin)
    with db.session() as s:
        user = users.get_user(s, username=args.username)
        users.set_password(s, user=user, password=password, passwords=_passwords(settings))
    print(f"password of {args.username} changed")
    return 0


def cmd_users_token(args: argparse.Namespace) -> int:
    from server.schemas import ApiTokenCreate
    from server.services import users

    body = _valid(ApiTokenCreate, name=args.name, ttl_days=args.days)
    _, db = _ready()
    with db.session() as s:
        user = users.get_user(s, username=args.username)
        ttl_s = body.ttl_days * 86400 if body.ttl_days else None
        _, token = users.create_token(s, user=user, name=body.name, ttl_s=ttl_s)
    print(token)
    return 0


def cmd_roster_import(args: argparse.Namespace) -> int:
    from server.services import users

    settings, db = _ready()
    text = args.csv.read_text(encoding="utf-8-sig")
    with db.session() as s:
        created, updated = users.import_roster(s, text=text, passwords=_passwords(settings))
    print(f"roster: {created} created, {updated} updated")
    return 0


def cmd_assignments_load(args: argparse.Namespace) -> int:
    from server.services import courses

    settings, db = _ready()
    folder = args.dir or settings.assignments_dir
    course = _course(db, settings)
    with db.session() as s:
        course = s.merge(course)
        loaded = courses.load_assignments(s, course=course, assignments_dir=folder)
        for a in loaded:
            print(f"{a.name}: {a.title} ({a.points:g} points, {len(a.rubric)} items, due {a.deadline or '-'})")
    if not loaded:
        print("no assignments found")
    return 0


def cmd_assignments_deadline(args: argparse.Namespace) -> int:
    from server.services import courses

    settings, db = _ready()
    when = None
    if args.when.lower() != "none":
        when = datetime.fromisoformat(args.when)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    course = _course(db, settings)
    with db.session() as s:
        a = courses.get_assignment(s, course=s.merge(course), name=args.name)
        courses.set_deadline(s, assignment=a, deadline=when)
    print(f"{args.name}: deadline {when.isoformat() if when else 'none'}")
    return 0


def cmd_course_show(args: argparse.Namespace) -> int:
    from server.services import courses

    settings, db = _ready()
    course = _course(db, settings)
    print(f"course {course.slug}: {course.title}")
    print(f"scheme: {courses.scheme_of(course).model_dump_json()}")
    print(f"policy: {courses.policy_of(course).model_dump_json()}")
    return 0


def cmd_course_scheme(args: argparse.Namespace) -> int:
    from server.services import courses

    settings, db = _ready()
    with db.session() as s:
        course = _open_course(s, settings)
        courses.update_course(s, course=course, scheme=args.name)
    print(f"scheme: {args.name}")
    return 0


def cmd_course_policy(args: argparse.Namespace) -> int:
    from server.scheme import CoursePolicy
    from server.services import courses

    settings, db = _ready()
    with db.session() as s:
        course = _open_course(s, settings)
        changes = {
            k: v
            for k, v in {
                "counting": args.counting,
                "late_penalty_per_day": args.late_penalty_per_day,
                "late_max_days": args.late_max_days,
                "grace_minutes": args.grace_minutes,
            }.items()
            if v is not None
        }
        policy = _valid(CoursePolicy, **{**courses.policy_of(course).model_dump(), **changes})
        courses.update_course(s, course=course, policy=policy)
    print(f"policy: {policy.model_dump_json()}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from server.worker import Worker

    settings, db = _ready()
    if not _sandbox_runs(settings):
        db.dispose()
        return 2
    worker = Worker(db=db, settings=settings, worker_id=args.worker_id)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing or releasing the current job, then stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run(exit_when_idle=args.exit_when_idle)
    db.dispose()
    return 0


def setup_demo(settings: Settings, db: Database) -> list[tuple[str, str, str]]:
    """A demo course: its assignments from the assignments folder (the first due in two weeks) and demo users."""
    from server.services import courses, users

    passwords = _passwords(settings)
    with db.session() as s:
        course = _open_course(s, settings)
        loaded = courses.load_assignments(s, course=course, assignments_dir=settings.assignments_dir)
        if not loaded:
            raise DomainError("demo: no assignment folder with a rubric.yaml was found (set DGM_ASSIGNMENTS_DIR)")
        a = min(loaded, key=lambda assignment: (assignment.position, assignment.name))
        if a.deadline is None:
            deadline = (datetime.now(UTC) + timedelta(days=14)).replace(second=0, microsecond=0)
            courses.set_deadline(s, assignment=a, deadline=deadline)
        creds = []
        for username, role, password in DEMO_USERS:
            try:
                user = users.get_user(s, username=username)
                users.set_password(s, user=user, password=password, passwords=passwords)
            except DomainError:
                users.create_user(s, username=username, role=role, password=password, passwords=passwords)
            creds.append((username, password, role.value))
    return creds


def _sandbox_runs(settings: Settings) -> bool:
    """Whether the configured sandbox backend runs here (logged); if not, say why before taking any job."""
    from grader.errors import SandboxUnavailable
    from server.grading import check_sandbox

    try:
        check_sandbox(settings)
    except SandboxUnavailable as exc:
        print(f"dgm-grader: error: {exc} (DGM_SANDBOX={settings.sandbox})", file=sys.stderr)
        return False
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.main import create_app

    settings, db = _ready()
    if args.no_worker:
        settings = settings.model_copy(update={"inprocess_worker": False})
    if settings.inprocess_worker and not _sandbox_runs(settings):
        db.dispose()
        return 2
    if args.demo:
        creds = setup_demo(settings, db)
        url = f"http://{args.host}:{args.port}/login"
        print(f"\nDGM Grader demo: open {url}")
        for username, password, role in creds:
            print(f"  {role:<8} username {username!r:<10} password {password!r}")
        print(f"  data in {settings.home.resolve()} (database {_redact(settings.effective_database_url)})")
        print(
            f"  grading: profile {settings.profile}, sandbox {settings.sandbox} (DGM_SANDBOX=none to run unisolated)\n"
        )
    db.dispose()
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m server ...``: the server's commands without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m server", description="DGM Grader course server")
    parser.add_argument("-v", "--verbose", action="store_true")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return int(args.func(args))
