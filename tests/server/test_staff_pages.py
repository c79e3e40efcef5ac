"""TA pages: statistics, paginated submission lists, queue position, regrade-all confirmation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from server.models import Assignment, GradingJob, JobState, Submission, User, utcnow
from server.pages.charts import histogram_svg
from server.services.queue_wait import about
from server.services.stats import summarize

sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"


def login(client, username: str) -> str:
    client.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


def test_summary_and_histogram() -> None:
    s = summarize([0, 4, 4, 2.5, 13], max_points=13)
    assert s.n == 5 and s.mean == pytest.approx(4.7) and s.median == 4
    assert len(s.bins) == 13 and [b.count for b in s.bins][:5] == [1, 0, 1, 0, 2] and s.bins[-1].count == 1
    assert summarize([], max_points=4).mean is None and len(summarize([1.5], max_points=0.5).bins) == 12
    svg = str(histogram_svg(s, label="hw1 <x>"))
    assert svg.startswith("<svg") and svg.count("<rect") == 13 and "hw1 &lt;x&gt;" in svg and "<x>" not in svg
    assert "stroke-dasharray" in svg  # the mean


@sqlite
def test_statistics_show_means_medians_and_the_check_most_students_failed(course) -> None:
    course.upload("alice", fraction=1.0)
    bob = course.upload("bob", fraction=0.0)
    course.drain()
    c = course.client
    # bob failed both automatic items; a TA accepted his theory answer by hand, so only the check stays failed.
    body = {"points": 4, "reason": "accepted by hand"}
    assert c.put(f"/api/submissions/{bob}/items/theory", json=body, headers=course.auth("tina")).status_code == 200
    login(c, "alice")
    assert c.get("/gradebook/stats").status_code == 403
    login(c, "tina")
    page = c.get("/gradebook/stats").text
    row = re.search(r'<tr data-assignment="hw1".*?</tr>', page, re.S).group(0)
    assert "2 / 2" in row and '<td class="mean">6.00<' in row and "<svg" in row
    items = re.search(r'id="item-stats".*?</table>', page, re.S).group(0)
    code = re.search(r'<tr data-item="code".*?</tr>', items, re.S).group(0)
    assert 'class="worst"' in code and '<td class="failed">1 <span class="muted">(50%)' in code
    assert "most failed" in page and "<strong>code</strong>" in page
    discussion = re.search(r'<tr data-item="discussion".*?</tr>', items, re.S).group(0)
    assert 'href="/assignments/hw1/items/discussion">2<' in discussion  # two answers to review
    assert "<script" not in page.split("</head>")[1]
    other = c.get("/gradebook/stats?assignment=hw2").text
    assert 'id="item-stats"' in other and "most failed" not in other
    assert c.get("/gradebook/stats?assignment=nope").status_code == 200
    assert c.get("/gradebook/stats?assignment=" + "x" * 100).status_code == 422


def _many_submissions(course, n: int) -> None:
    with course.db.session() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        hw1 = s.scalar(select(Assignment).where(Assignment.name == "hw1"))
        s.add_all(
            Submission(user_id=alice.id, assignment_id=hw1.id, sha256="0" * 64, filename=f"{k}.ipynb", size=1)
            for k in range(n)
        )


@sqlite
def test_submission_lists_page_through_every_submission(course) -> None:
    _many_submissions(course, 205)
    c = course.client
    login(c, "tina")
    first = c.get("/submissions?assignment=hw1").text
    ids = [int(x) for x in re.findall(r'data-submission="(\d+)"', first)]
    assert len(ids) == 100 and ids[0] == 205 and 'id="older"' in first and 'id="newer"' not in first
    assert 'href="/submissions?assignment=hw1&amp;username=&amp;page=2"' in first
    third = c.get("/submissions?assignment=hw1&page=3").text
    assert re.findall(r'data-submission="(\d+)"', third) == ["5", "4", "3", "2", "1"]
    assert 'id="older"' not in third and 'id="newer"' in third
    assert "No submissions" in c.get("/submissions?page=9").text
    assert c.get("/submissions?page=0").status_code == 422 and c.get("/submissions?page=x").status_code == 422
    login(c, "alice")
    mine = c.get("/me?page=2").text
    assert len(re.findall(r'data-submission="(\d+)"', mine)) == 100 and 'id="older"' in mine


@sqlite
def test_a_queued_submission_shows_its_place_and_an_estimate(course) -> None:
    c = course.client
    # Three recent gradings took 40 s each, by two workers.
    done = course.upload("bob")
    with course.db.session() as s:
        now = utcnow()
        job = s.scalar(select(GradingJob).where(GradingJob.submission_id == done))
        job.state, job.started_at, job.finished_at, job.lease_owner = (
            JobState.done,
            now - timedelta(seconds=40),
            now,
            "w1",
        )
        for owner in ("w1", "w2"):
            s.add(
                GradingJob(
                    submission_id=done,
                    state=JobState.done,
                    started_at=now - timedelta(seconds=100),
                    finished_at=now - timedelta(seconds=60),
                    lease_owner=owner,
                )
            )
    subs = [course.upload(name) for name in ("alice", "bob", "alice")]
    login(c, "alice")
    page = c.get(f"/submissions/{subs[2]}").text
    position = re.sub(r"<[^>]+>|\s+", " ", re.search(r'id="queue-position">(.*?)</p>', page, re.S).group(1))
    assert "3rd in the queue ; result in about 80 s" in position, position
    assert "(recent gradings take about 40 s, 2 workers)" in position
    assert "(attempt 0)" not in page
    assert "1st in the queue" in c.get(f"/submissions/{subs[0]}").text
    course.drain()
    page = c.get(f"/submissions/{subs[2]}").text
    assert 'id="queue-position"' not in page and "in the queue" not in page
    assert about(30) == "about 30 s" and about(600) == "about 10 min" and about(7200) == "about 2.0 h"


@sqlite
def test_regrade_all_asks_first(course) -> None:
    course.upload("alice")
    course.drain()
    c = course.client
    csrf = login(c, "tina")
    assert 'href="/assignments/hw1/regrade"' in c.get("/gradebook").text
    page = c.get("/assignments/hw1/regrade").text
    assert "Regrade all of hw1?" in page and "Regrade 1 submission<" in page
    r = c.post("/assignments/hw1/regrade", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Tick the box" in r.text
    with course.db.session() as s:
        assert s.scalar(select(GradingJob).where(GradingJob.state == JobState.queued)) is None
    r = c.post("/assignments/hw1/regrade", data={"csrf_token": csrf, "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    with course.db.session() as s:
        assert s.scalar(select(GradingJob).where(GradingJob.state == JobState.queued)) is not None
    login(c, "alice")
    assert c.get("/assignments/hw1/regrade").status_code == 403


@sqlite
def test_a_bad_deadline_on_the_assignments_page_is_shown_inline(course) -> None:
    c = course.client
    csrf = login(c, "tina")
    r = c.post("/assignments/hw2/deadline", data={"csrf_token": csrf, "deadline": "next friday"})
    assert r.status_code == 422 and "not a date and time" in r.text and 'value="next friday"' in r.text
    assert "<h1>Assignments</h1>" in r.text
