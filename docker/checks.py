"""The checks `make docker-test` (docker/test.sh) makes on what the docker backend and the compose stack graded.

python docker/checks.py report REPORT.json [--fixture NAME.ipynb]   a CLI report: every automatic point
    for the solved notebook, or what tests/fixtures/hw1/expected.yaml says the fixture must lose
python docker/checks.py upload URL NOTEBOOK --user U --password P --auto POINTS [--backend docker]
    upload NOTEBOOK as U to the server at URL and wait until a worker graded it to POINTS automatic points
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

EXPECTED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hw1" / "expected.yaml"
GRADING_TIMEOUT_S = 900.0


def check_report(report: dict[str, Any], fixture: str | None) -> list[str]:
    """What is wrong with `report` (an empty list when nothing is)."""
    spec = yaml.safe_load(EXPECTED.read_text())["fixtures"][fixture] if fixture else {}
    lose, may_lose = set(spec.get("lose", [])), set(spec.get("may_lose", []))
    problems = [] if report["sandbox"]["backend"] == "docker" else [f"backend {report['sandbox']['backend']}"]
    for item in report["items"]:
        if item["kind"] == "manual" or item["id"] in may_lose:
            continue
        full = item["points"] == item["max_points"]
        if full == (item["id"] in lose):
            problems.append(f"{item['id']}: {item['points']}/{item['max_points']} ({item['message']})")
    return problems


def upload(url: str, notebook: Path, *, user: str, password: str, auto: float, backend: str) -> list[str]:
    """Upload as `user`, wait for the grade; what is wrong with it (`backend`: the sandbox it must use)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post("/api/auth/token", data={"username": user, "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        with notebook.open("rb") as f:
            created = client.post("/api/submissions", files={"file": (notebook.name, f)}, data={"assignment": "hw1"})
        created.raise_for_status()
        deadline = time.monotonic() + GRADING_TIMEOUT_S
        while time.monotonic() < deadline:
            sub = client.get(f"/api/submissions/{created.json()['id']}").json()
            if sub["status"] not in ("queued", "running"):
                break
            time.sleep(3)
        else:
            return [f"not graded within {GRADING_TIMEOUT_S:g} s"]
    print(f"submission {sub['id']}: {sub['status']}, total {sub['total']}/{sub['max_total']}", file=sys.stderr)
    if sub["status"] != "graded":
        return [f"status {sub['status']}: {sub['error']}"]
    used = ((sub.get("report") or {}).get("sandbox") or {}).get("backend", backend)
    if used != backend:
        return [f"graded by the {used} backend, expected {backend}"]
    got = sum(i["points"] or 0 for i in sub["items"] if i["kind"] != "manual")
    return [] if got == auto else [f"{got} automatic points, expected {auto} (the CLI's)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report")
    r.add_argument("report", type=Path)
    r.add_argument("--fixture")
    u = sub.add_parser("upload")
    u.add_argument("url")
    u.add_argument("notebook", type=Path)
    u.add_argument("--user", required=True)
    u.add_argument("--password", required=True)
    u.add_argument("--auto", type=float, required=True)
    u.add_argument("--backend", default="docker")
    args = parser.parse_args()
    if args.command == "report":
        problems = check_report(json.loads(args.report.read_text()), args.fixture)
    else:
        problems = upload(
            args.url, args.notebook, user=args.user, password=args.password, auto=args.auto, backend=args.backend
        )
    for problem in problems:
        print(f"docker-test: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
