"""Grading by question: which answers the page walks through, which cells it shows, and its form."""

from __future__ import annotations

import json
import re

import pytest

from server.services.questions import answer_cells

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"


def _login(course, username: str) -> str:
    c = course.client
    c.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get("/").text).group(1)


def _cell(source: str, *tags: str) -> dict:
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)}, "source": source}


def test_the_answer_is_the_theory_cell_beside_the_items_it_goes_with() -> None:
    cells = [
        _cell("# Homework"),
        _cell("Proof of KDE.\n```answer\nt1_kde_variance: s2 + h**2\n```", "theory"),
        _cell("Alpha.\n```answer\nt2_alpha_to_1: log(2)\n```", "theory"),
        {"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": "x = 1", "outputs": []},
    ]
    data = json.dumps({"cells": cells}).encode()
    assert answer_cells(data, {"id": "t1_kde_proof"}) == [cells[1]]
    assert answer_cells(data, {"id": "t2_alpha_proof"}) == [cells[2]]
    # No theory cell names a related item: every student cell, so the TA still sees the work.
    assert answer_cells(data, {"id": "discussion"}) == cells[1:]
    assert answer_cells(b"not json", {"id": "t1_kde_proof"}) == []
    assert answer_cells(json.dumps({"cells": [_cell("x", {"bad": 1})]}).encode(), {"id": "t1"}) == []  # type: ignore[arg-type]


def test_the_cells_a_rubric_item_names_are_its_answer() -> None:
    """A manual item with `cells` (template ids) shows those cells, in notebook order, outputs and all."""
    plot = {"cell_type": "code", "metadata": {"tags": ["experiment"], "dgm": {"id": "visuals"}}, "source": "plot()"}
    text = _cell("Discussion.", "theory") | {"metadata": {"tags": ["theory"], "dgm": {"id": "discussion"}}}
    cells = [_cell("# Homework"), plot, text]
    data = json.dumps({"cells": cells}).encode()
    assert answer_cells(data, {"id": "m_visuals", "cells": ["visuals"]}) == [plot]
    assert answer_cells(data, {"id": "m_all", "cells": ["discussion", "visuals"]}) == [plot, text]
    # cells the student's notebook lost: the usual fallback
    assert answer_cells(data, {"id": "m_gone", "cells": ["missing"]}) == [text]


@sqlite_only
def test_only_staff_grade_by_question_and_only_manual_items(course) -> None:
    course.upload("alice")
    course.drain()
    _login(course, "tina")
    assert course.client.get("/assignments/hw1/items/discussion").status_code == 200
    assert course.client.get("/assignments/hw1/items/code").status_code == 404  # graded automatically
    assert course.client.get("/assignments/hw1/items/discussion?submission=999").status_code == 404
    _login(course, "alice")
    assert course.client.get("/assignments/hw1/items/discussion").status_code == 403


@sqlite_only
def test_a_rejected_grade_keeps_what_the_ta_typed(course) -> None:
    sub = course.upload("alice")
    course.upload("bob")
    course.drain()
    csrf = _login(course, "tina")
    form = {"csrf_token": csrf, "submission": str(sub), "points": "7", "comment": "Good <b>plots</b>"}
    r = course.client.post("/assignments/hw1/items/discussion", data=form)
    assert r.status_code == 422 and "between 0 and 5" in r.text
    assert 'value="7"' in r.text and "Good &lt;b&gt;plots&lt;/b&gt;</textarea>" in r.text
    r = course.client.post("/assignments/hw1/items/discussion", data={**form, "points": "4,5"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith(f"?submission={sub + 1}")  # bob is next
    page = course.client.get(r.headers["location"]).text
    assert "1 of 2 graded" in page and 'data-comment="Good &lt;b&gt;plots&lt;/b&gt;"' in page
    r = course.client.get("/api/assignments/hw1/items/discussion/answers", headers=course.auth("tina"))
    assert r.status_code == 200 and r.json()["graded"] == 1 and r.json()["total"] == 2
    assert [(a["username"], a["points"], a["comment"]) for a in r.json()["answers"]] == [
        ("alice", 4.5, "Good <b>plots</b>"),
        ("bob", None, None),
    ]
    assert course.client.get("/api/assignments/hw1/items/code/answers", headers=course.auth("tina")).status_code == 404
    assert (
        course.client.get("/api/assignments/hw1/items/discussion/answers", headers=course.auth("alice")).status_code
        == 403
    )
