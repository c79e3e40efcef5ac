"""Server-rendered pages: cookie sessions, CSRF, what each role sees, safe notebook rendering."""

from __future__ import annotations

import json
import re

import pytest

from server.testing import make_notebook

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def _login(course, username: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    c = course.client
    c.cookies.clear()
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("samesite", "SameSite")
    return _csrf(c.get("/gradebook" if username in ("tina", "ada") else "/me").text)


def test_login_needs_the_form_token_and_the_right_password(course) -> None:
    c = course.client
    assert c.get("/me", follow_redirects=False).headers["location"] == "/login?next=/me"
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400 and "expired" in r.text
    token = _csrf(r.text)
    r = c.post("/login", data={"username": "alice", "password": "nope", "csrf_token": token})
    assert r.status_code == 400 and "Wrong username or password" in r.text
    r = c.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": _csrf(r.text), "next": "//evil"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "Content-Security-Policy" in c.get("/me").headers


def test_student_pages_show_only_own_work(course) -> None:
    bob_sub = course.upload("bob")
    csrf = _login(course, "alice")
    c = course.client
    files = {"file": ("hw.ipynb", make_notebook(fraction=0.75), "application/x-ipynb+json")}
    # The page's upload goes through the API with the session cookie: it must carry the CSRF header.
    assert c.post("/api/submissions", files=files, data={"assignment": "hw1"}).status_code == 403
    r = c.post("/api/submissions", files=files, data={"assignment": "hw1"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202
    sub = r.json()["id"]
    course.drain()
    page = c.get("/me").text
    assert f'data-submission="{sub}"' in page and "6 / 13" in page and f'data-submission="{bob_sub}"' not in page
    assert c.get(f"/submissions/{sub}").status_code == 200
    assert c.get(f"/submissions/{bob_sub}").status_code == 404
    assert c.get(f"/submissions/{bob_sub}/report").status_code == 404
    assert c.get("/gradebook").status_code == 403
    r = c.post(f"/submissions/{sub}/grade", data={"csrf_token": csrf, "points:discussion": "5"})
    assert r.status_code == 403


def test_ta_grades_through_forms(course) -> None:
    sub = course.upload("alice")
    course.drain()
    csrf = _login(course, "tina")
    c = course.client
    gradebook = c.get("/gradebook").text
    assert 'data-username="alice"' in gradebook and ">manual<" in gradebook

    form = {"points:discussion": "4.5", "comment:discussion": "good plots", "points:code": "", "points:theory": ""}
    assert c.post(f"/submissions/{sub}/grade", data=form).status_code == 403  # no token
    r = c.post(f"/submissions/{sub}/grade", data={**form, "csrf_token": csrf})
    assert r.status_code == 200  # after the redirect
    body = c.get(f"/api/submissions/{sub}").json()
    assert body["total"] == 12.5 and body["items"][2]["manual_comment"] == "good plots"
    # A mistake saves nothing and keeps everything typed, beside the error.
    typed = {"csrf_token": csrf, "points:code": "1", "points:discussion": "3", "comment:discussion": "typed <i>"}
    r = c.post(f"/submissions/{sub}/grade", data=typed)
    assert r.status_code == 422 and "needs a reason" in r.text and "Nothing was saved" in r.text
    assert 'name="points:code" value="1"' in r.text and 'value="typed &lt;i&gt;"' in r.text
    assert c.get(f"/api/submissions/{sub}").json()["total"] == 12.5

    assert c.post("/exam", data={"csrf_token": csrf, "exam:alice": "20", "exam:bob": ""}).status_code == 200
    row = c.get("/gradebook").text
    assert re.search(r'class="total">32\.5<', row) and re.search(r'class="final">2<', row)
    r = c.post(
        "/extensions",
        data={"csrf_token": csrf, "assignment": "hw1", "username": "bob", "deadline": "2031-01-01T12:00"},
    )
    assert r.status_code == 200 and "2031-01-01 12:00 UTC" in r.text
    assert c.post(f"/submissions/{sub}/regrade", data={"csrf_token": csrf}).status_code == 200
    assert c.post("/assignments/hw1/regrade", data={"csrf_token": csrf, "confirm": "yes"}).status_code == 200
    assert c.get("/api/gradebook.csv").status_code == 200
    assert "executed by the grader" in c.get(f"/submissions/{sub}").text


def test_notebooks_are_rendered_without_running_anything(course) -> None:
    nb = json.loads(make_notebook())
    nb["cells"][0]["source"] = "# Title <script>alert(1)</script>\n[x](javascript:alert(2)) $\\alpha < 1$"
    nb["cells"][1]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/html": "<script>alert(3)</script>", "text/plain": "<b>plain</b>"},
        },
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["\x1b[31mValueError\x1b[0m: <bad>"],
        },
    ]
    r = course.client.post(
        "/api/submissions",
        files={"file": ("x.ipynb", json.dumps(nb).encode(), "application/x-ipynb+json")},
        data={"assignment": "hw1"},
        headers=course.auth("alice"),
    )
    sub = r.json()["id"]
    _login(course, "alice")
    html = course.client.get(f"/submissions/{sub}").text
    assert "<script>alert" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;plain&lt;/b&gt;" in html
    assert '<math display="inline"><mrow><mi>α</mi><mo>&lt;</mo><mn>1</mn></mrow></math>' in html
    assert "ValueError: &lt;bad&gt;" in html and "\x1b" not in html
