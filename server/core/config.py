"""Server settings, read from ``DGM_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the server and its workers.

    ``DGM_HOME`` holds the SQLite database, the uploaded files and the generated session key;
    ``DGM_DATABASE_URL`` points the server at PostgreSQL instead.
    """

    model_config = SettingsConfigDict(env_prefix="DGM_", extra="ignore")

    home: Path = Path("./var")
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    assignments_dir: Path | None = None
    course: str = "dgm"  # one course per process; assignments/courses.yaml gives its title, scheme, assignments
    course_title: str = ""  # overrides the title courses.yaml gives a new course

    # Grading: "module:callable" replaces the real grader (tests use server.testing:fake_grade).
    grader: str | None = None
    profile: str = "ci"
    # Chosen, never detected: a grader that switched backends when an engine appeared would grade the
    # same notebook differently. Checked and logged when a worker starts (server.grading.check_sandbox).
    sandbox: Literal["bwrap", "docker", "none"] = "bwrap"

    # Queue and workers.
    inprocess_worker: bool = True
    worker_poll_s: float = 1.0
    lease_s: float = 120.0
    heartbeat_s: float = 20.0
    max_attempts: int = 3
    retry_backoff_s: float = 5.0
    shutdown_grace_s: float = 30.0

    # Limits.
    max_upload_bytes: int = 16 * 1024 * 1024
    login_rate_per_minute: int = 10  # attempts on one username, from anywhere
    login_rate_per_address_per_minute: int = 30  # attempts from one client address, on any usernames
    upload_rate_per_minute: int = 30

    # Sessions and passwords.
    session_ttl_s: int = 12 * 3600
    access_token_ttl_s: int = 12 * 3600
    cookie_secure: bool = False
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the SQLite file inside ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'dgm.sqlite3').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    def session_secret(self) -> bytes:
        """The key that signs session cookies: configured, or generated once and kept in ``home``."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.home / "secret_key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()
