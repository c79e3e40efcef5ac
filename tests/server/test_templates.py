"""Releasing the blank template: students download it from the API and from their page."""

from __future__ import annotations

import pytest

from grader import load_assignment
from tests.server.conftest import add_assignment_without_notebook

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_student_downloads_the_template_of_an_assignment(course) -> None:
    r = course.client.get("/api/assignments/hw1/template", headers=course.auth("alice"))
    assert r.status_code == 200, r.text
    assert r.content == load_assignment("hw1").template_path.read_bytes()
    assert r.headers["content-type"] == "application/x-ipynb+json"
    assert 'filename="hw1.ipynb"' in r.headers["content-disposition"]


def test_template_needs_a_login_and_an_existing_notebook(course) -> None:
    assert course.client.get("/api/assignments/hw1/template").status_code == 401
    add_assignment_without_notebook(course.db)
    r = course.client.get("/api/assignments/essay/template", headers=course.auth("alice"))  # no assignments/essay/
    assert r.status_code == 404 and "no template" in r.text
    assert course.client.get("/api/assignments/nope/template", headers=course.auth("alice")).status_code == 404
