"""The pages in a real headless chromium: a student uploads and sees the score; the TA sees the grade."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import FAST_PASSWORDS

from server.testing import make_notebook
from tests.server.conftest import add_assignment_without_notebook

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "correct horse battery"


@pytest.fixture
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dgm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _login(driver, url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()


def test_student_uploads_and_ta_sees_the_grade(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    notebook = tmp_path / "hw1.ipynb"
    notebook.write_bytes(make_notebook(fraction=1.0, sleep=0.5))

    _login(driver, url, "alice")
    wait.until(ec.presence_of_element_located((By.ID, "upload-form")))
    Select(driver.find_element(By.ID, "assignment")).select_by_value("hw1")
    driver.find_element(By.ID, "file").send_keys(str(notebook))
    driver.find_element(By.ID, "upload").click()
    # The page reloads with the new submission, then polls its status until the score shows.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#my-submissions tr[data-submission]")))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#my-submissions .score"), "8 / 13"))
    row = driver.find_element(By.CSS_SELECTOR, "#my-submissions tr[data-submission]")
    assert row.get_attribute("data-status") == "graded"
    row.find_element(By.LINK_TEXT, "feedback").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "score"), "8"))
    assert "50%" not in driver.page_source and "MaskedConv2d masks" in driver.page_source

    token = live_server.tokens["tina"]
    r = httpx.put(f"{url}/api/gradebook/alice/exam", json={"points": 26}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200

    driver.find_element(By.ID, "logout").click()
    _login(driver, url, "tina")
    row_css = 'tr[data-username="alice"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row_css)))
    row = driver.find_element(By.CSS_SELECTOR, row_css)
    driver.find_element(By.ID, "gradebook").screenshot(str(tmp_path / "gradebook.png"))
    assert row.find_element(By.CSS_SELECTOR, ".total").text == "34"
    assert row.find_element(By.CSS_SELECTOR, ".final").text == "2"  # floor(34 / 8 - 2)
    assert "manual" in row.text  # the discussion item waits for the TA
    # Sorting by total puts alice (34) above bob (0) in descending order.
    header = driver.find_element(By.XPATH, "//table[@id='gradebook']//th[normalize-space(text())='Total']")
    header.click()
    header.click()
    first = driver.find_element(By.CSS_SELECTOR, "#gradebook tbody tr")
    assert first.get_attribute("data-username") == "alice"


def test_student_downloads_the_blank_template(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from grader import load_assignment

    driver, url = browser, live_server.url
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    add_assignment_without_notebook(live_server.db)
    _login(driver, url, "alice")
    link = WebDriverWait(driver, 45).until(ec.element_to_be_clickable((By.ID, "template-hw1")))
    assert driver.find_elements(By.ID, "template-essay") == []  # no notebook to release
    link.click()
    target = tmp_path / "hw1.ipynb"
    WebDriverWait(driver, 30).until(lambda _: target.exists())
    assert target.read_bytes() == load_assignment("hw1").template_path.read_bytes()


def _upload(live_server, username: str, notebook: bytes) -> int:
    r = httpx.post(
        f"{live_server.url}/api/submissions",
        files={"file": ("solution.ipynb", notebook, "application/x-ipynb+json")},
        data={"assignment": "hw1"},
        headers={"Authorization": f"Bearer {live_server.tokens[username]}"},
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_feedback_page_shows_math_as_mathml_and_nested_lists(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    nb = json.loads(make_notebook())
    nb["cells"][0]["source"] = (
        "## ELBO\n\nThe bound $\\mathbb{E}_{q}[\\log p(x|z)]$ holds.\n\n"
        "1. First step\n   - nested point\n   - another with ``a `b` c``\n2. Second step\n\n"
        "$$\n\\log p(x) \\ge \\mathbb{E}_{q}[\\log p(x|z)] - \\mathrm{KL}(q \\| p)\n$$\n"
    )
    sub = _upload(live_server, "alice", json.dumps(nb).encode())
    driver = browser
    _login(driver, live_server.url, "alice")
    WebDriverWait(driver, 45).until(ec.presence_of_element_located((By.ID, "upload-form")))
    driver.get(f"{live_server.url}/submissions/{sub}")
    cell = WebDriverWait(driver, 45).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#cell-0 .markdown")))
    driver.execute_script("arguments[0].scrollIntoView()", cell)
    cell.screenshot(str(tmp_path / "feedback-math.png"))
    inline = cell.find_element(By.CSS_SELECTOR, "span.math math")
    assert inline.get_attribute("display") == "inline" and "𝔼" in inline.text and "$" not in cell.text
    assert cell.find_element(By.CSS_SELECTOR, "div.math math").get_attribute("display") == "block"
    # MathML is laid out by the browser (a plain unknown element would have no height of its own).
    assert inline.size["height"] > 0 and driver.execute_script("return typeof MathMLElement") == "function"
    nested = cell.find_elements(By.CSS_SELECTOR, "ol > li > ul > li")
    assert [li.text for li in nested] == ["nested point", "another with a `b` c"]


def test_students_see_manual_points_only_after_release(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    sub = _upload(live_server, "alice", make_notebook())
    discussion = "tr[data-item='discussion']"

    _login(driver, url, "tina")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.get(f"{url}/submissions/{sub}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "score"), "8"))
    driver.find_element(By.NAME, "points:discussion").send_keys("4")
    driver.find_element(By.NAME, "comment:discussion").send_keys("clear samples")
    driver.find_element(By.ID, "save-grades").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "score"), "12"))
    assert "reviewed" in driver.find_element(By.CSS_SELECTOR, discussion).text
    driver.find_element(By.ID, "logout").click()

    _login(driver, url, "alice")
    wait.until(ec.presence_of_element_located((By.ID, "provisional-note")))
    assert driver.find_element(By.ID, "total").text == "0"
    grades = driver.find_element(By.ID, "grades")
    driver.execute_script("arguments[0].scrollIntoView()", grades)
    grades.screenshot(str(tmp_path / "student-before-release.png"))
    driver.get(f"{url}/submissions/{sub}")
    wait.until(ec.presence_of_element_located((By.ID, "release-note")))
    row = driver.find_element(By.CSS_SELECTOR, discussion)
    assert driver.find_element(By.ID, "score").text == "8"
    assert "manual review pending" in row.text and "clear samples" not in driver.page_source
    assert row.find_element(By.CSS_SELECTOR, ".manual-points").text == "–"
    driver.find_element(By.CSS_SELECTOR, "table.items").screenshot(str(tmp_path / "feedback-before-release.png"))
    driver.find_element(By.ID, "logout").click()

    _login(driver, url, "tina")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.get(f"{url}/assignments")
    wait.until(ec.element_to_be_clickable((By.ID, "release-hw1"))).click()
    wait.until(ec.alert_is_present()).accept()  # "Show the manual points ... to every student now?"
    wait.until(ec.presence_of_element_located((By.ID, "withdraw-hw1")))
    driver.save_screenshot(str(tmp_path / "assignments-released.png"))
    driver.find_element(By.ID, "logout").click()

    _login(driver, url, "alice")
    wait.until(ec.presence_of_element_located((By.ID, "provisional-note")))
    assert driver.find_element(By.ID, "total").text == "12"
    driver.get(f"{url}/submissions/{sub}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "score"), "12"))
    row = driver.find_element(By.CSS_SELECTOR, discussion)
    assert row.find_element(By.CSS_SELECTOR, ".manual-points").text == "4" and "clear samples" in row.text
    assert driver.find_elements(By.ID, "release-note") == []


def test_ta_grades_one_manual_item_across_three_submissions_by_question(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from server.models import Role
    from server.services import users

    with live_server.db.session() as s:
        carol = users.create_user(s, username="carol", role=Role.student, password=PASSWORD, passwords=FAST_PASSWORDS)
        live_server.tokens["carol"] = users.create_token(s, user=carol, name="test")[1]
    subs = {}
    for name in ("carol", "alice", "bob"):
        nb = json.loads(make_notebook())
        proof = f"**Proof by {name}.** Jensen: $\\log \\mathbb{{E}}[x] \\ge \\mathbb{{E}}[\\log x]$."
        nb["cells"].append({"cell_type": "markdown", "metadata": {"tags": ["theory"]}, "source": proof})
        subs[name] = _upload(live_server, name, json.dumps(nb).encode())
    auth = {"Authorization": f"Bearer {live_server.tokens['tina']}"}
    for sub in subs.values():
        _wait_graded(live_server.url, sub, auth)

    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    _login(driver, url, "tina")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.get(f"{url}/assignments")
    driver.find_element(By.CSS_SELECTOR, "tr[data-assignment='hw1'] a[href$='/items/discussion']").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "0 of 3 graded"))
    assert "Proof by alice" in driver.find_element(By.ID, "answer").text  # by username, the first ungraded
    assert driver.find_elements(By.CSS_SELECTOR, "#answer math")

    # A mistake keeps what was typed and says what is wrong.
    driver.find_element(By.ID, "points").send_keys("9")
    driver.find_element(By.ID, "comment").send_keys("Uses Jensen correctly.")
    driver.find_element(By.ID, "save-next").click()
    error = wait.until(ec.presence_of_element_located((By.ID, "form-error")))
    assert "between 0 and 5" in error.text
    assert driver.find_element(By.ID, "comment").get_attribute("value") == "Uses Jensen correctly."
    points = driver.find_element(By.ID, "points")
    points.clear()
    points.send_keys("4")
    driver.find_element(By.ID, "save-next").click()

    # bob: the comment given to alice is one click away; Enter in the points field saves.
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "1 of 3 graded"))
    assert "Proof by bob" in driver.find_element(By.ID, "answer").text
    driver.find_element(By.CSS_SELECTOR, "button[data-comment='Uses Jensen correctly.']").click()
    driver.find_element(By.ID, "points").send_keys("3", Keys.ENTER)

    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "2 of 3 graded"))
    assert "Proof by carol" in driver.find_element(By.ID, "answer").text
    driver.find_element(By.ID, "answer").screenshot(str(tmp_path / "question-answer.png"))
    driver.find_element(By.ID, "points").send_keys("5", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "progress"), "3 of 3 graded"))
    assert driver.find_element(By.ID, "all-graded").text == "all graded"
    driver.save_screenshot(str(tmp_path / "question-done.png"))
    # Away from the form, "k" goes back to the previous answer.
    driver.find_element(By.TAG_NAME, "h1").click()
    ActionChains(driver).send_keys("k").perform()
    wait.until(ec.text_to_be_present_in_element((By.ID, "answer"), "Proof by bob"))

    graded = {}
    for name, sub in subs.items():
        items = httpx.get(f"{url}/api/submissions/{sub}", headers=auth).json()["items"]
        item = next(i for i in items if i["id"] == "discussion")
        graded[name] = (item["manual_points"], item["manual_comment"])
    assert graded == {
        "alice": (4, "Uses Jensen correctly."),
        "bob": (3, "Uses Jensen correctly."),
        "carol": (5, None),
    }


def _wait_graded(url: str, sub: int, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 45
    while httpx.get(f"{url}/api/submissions/{sub}", headers=headers).json()["status"] != "graded":
        assert time.monotonic() < deadline, f"submission {sub} was not graded"
        time.sleep(0.2)


def _page_shot(driver, path: Path) -> None:
    """The whole page, beyond the window, for looking at it."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 5000), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def _screens(tmp_path: Path) -> Path:
    """Where screenshots go: ``DGM_SCREENSHOTS`` when set (to keep them), else the test's folder."""
    target = Path(os.environ.get("DGM_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_admin_creates_a_ta_and_a_student_through_pages(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    shots = _screens(tmp_path)
    _login(driver, url, "ada")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.find_element(By.LINK_TEXT, "Users").click()
    wait.until(ec.presence_of_element_located((By.ID, "create-user")))

    # A TA with a password.
    driver.find_element(By.ID, "new-username").send_keys("tom")
    driver.find_element(By.ID, "new-full-name").send_keys("Tom Teaching")
    Select(driver.find_element(By.ID, "new-role")).select_by_value("ta")
    driver.find_element(By.ID, "new-password").send_keys("tom's long password")
    driver.find_element(By.ID, "create-user-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "created"), "Created ta tom"))
    assert driver.find_element(By.ID, "user-role").text == "ta"

    # A student without a password: an invitation link. A mistake first: the form keeps what was typed.
    driver.find_element(By.LINK_TEXT, "Users").click()
    driver.find_element(By.ID, "new-username").send_keys("sue")
    driver.find_element(By.ID, "new-full-name").send_keys("Sue Student")
    driver.find_element(By.ID, "new-email").send_keys("sue@example")
    driver.find_element(By.ID, "create-user-button").click()
    error = wait.until(ec.presence_of_element_located((By.ID, "create-error")))
    assert "email" in error.text
    assert driver.find_element(By.ID, "new-full-name").get_attribute("value") == "Sue Student"
    _page_shot(driver, shots / "admin-users-error.png")
    email = driver.find_element(By.ID, "new-email")
    email.clear()
    email.send_keys("sue@example.org")
    driver.find_element(By.ID, "create-user-button").click()
    link = wait.until(ec.presence_of_element_located((By.ID, "password-link"))).get_attribute("value")
    _page_shot(driver, shots / "admin-user-invited.png")
    driver.find_element(By.LINK_TEXT, "Users").click()
    rows = {r.get_attribute("data-username"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#users tbody tr")}
    assert "ta" in rows["tom"] and "student" in rows["sue"] and "invited" in rows["sue"]
    _page_shot(driver, shots / "admin-users.png")
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.ID, "login")))

    # sue sets her password from the link, then logs in; tom logs in as a TA.
    driver.get(link)
    wait.until(ec.presence_of_element_located((By.ID, "new-password"))).send_keys("sue's new password")
    driver.find_element(By.ID, "repeat-password").send_keys("sue's new password")
    _page_shot(driver, shots / "password-set.png")
    driver.find_element(By.ID, "set-password").click()
    wait.until(ec.presence_of_element_located((By.ID, "login-notice")))
    driver.find_element(By.ID, "username").send_keys("sue")
    driver.find_element(By.ID, "password").send_keys("sue's new password")
    driver.find_element(By.ID, "login").click()
    wait.until(ec.presence_of_element_located((By.ID, "upload-form")))
    assert "sue (student)" in driver.find_element(By.CSS_SELECTOR, ".who").text
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.ID, "login")))
    driver.get(link)
    assert "does not work" in wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1"))).text
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "username").send_keys("tom")
    driver.find_element(By.ID, "password").send_keys("tom's long password")
    driver.find_element(By.ID, "login").click()
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    assert "tom (ta)" in driver.find_element(By.CSS_SELECTOR, ".who").text
    assert driver.find_elements(By.LINK_TEXT, "Users") == []  # not an admin
    driver.get(f"{url}/admin/users")
    assert "403" in driver.find_element(By.TAG_NAME, "h1").text


def test_roster_import_in_the_browser_keeps_a_tas_role(browser, live_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from server.services import users

    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    shots = _screens(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "username,full_name,email\nalice,Alice Liddell,alice@example.org\ntina,Tina Teaching,\nzoe,Zoe New,\n"
    )
    _login(driver, url, "ada")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.find_element(By.LINK_TEXT, "Roster").click()
    wait.until(ec.presence_of_element_located((By.ID, "roster-file"))).send_keys(str(roster))
    _page_shot(driver, shots / "admin-roster.png")
    driver.find_element(By.ID, "preview-roster").click()
    wait.until(ec.presence_of_element_located((By.ID, "preview")))
    assert (
        driver.find_element(By.ID, "count-create").text == "1"
        and driver.find_element(By.ID, "count-update").text == "2"
    )
    tina_row = driver.find_element(By.CSS_SELECTOR, "#preview-update tr[data-username='tina']").text
    assert "Tina Teaching" in tina_row and "ta" in tina_row.split() and "role:" not in tina_row
    _page_shot(driver, shots / "admin-roster-preview.png")
    driver.find_element(By.ID, "apply-roster").click()
    assert "1 created, 2 updated" in wait.until(ec.presence_of_element_located((By.ID, "roster-result"))).text
    with live_server.db.session() as s:
        tina = users.get_user(s, username="tina")
        assert tina.role.value == "ta" and tina.full_name == "Tina Teaching"
        assert users.get_user(s, username="zoe").role.value == "student"
    driver.find_element(By.LINK_TEXT, "Users").click()
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-username='tina'] .role")))
    assert row.text == "ta"


def test_new_admin_and_staff_pages_render_in_the_browser(browser, live_server, tmp_path: Path) -> None:
    """Each new page, with data, as a person sees it (screenshots); no page breaks the CSP or a script."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shots = _screens(tmp_path)
    driver, url = browser, live_server.url
    wait = WebDriverWait(driver, 45)
    auth = {"Authorization": f"Bearer {live_server.tokens['tina']}"}
    graded = [_upload(live_server, name, make_notebook(fraction=f)) for name, f in (("alice", 1.0), ("bob", 0.5))]
    for sub in graded:
        _wait_graded(url, sub, auth)
    httpx.post(f"{url}/api/tokens", json={"name": "ci-autograde", "ttl_days": 90}, headers=auth)
    _login(driver, url, "ada")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    _page_shot(driver, shots / "gradebook.png")
    pages = [
        ("/gradebook/stats", "stats"),
        ("/admin/users/alice", "admin-user"),
        ("/admin/users/alice/deactivate", "confirm-deactivate"),
        ("/admin/course", "admin-course"),
        ("/admin/course/close", "confirm-close"),
        ("/admin/tokens", "admin-tokens"),
        ("/assignments/hw1/regrade", "confirm-regrade"),
        ("/assignments", "assignments"),
        ("/submissions", "submissions"),
    ]
    for path, name in pages:
        driver.get(url + path)
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert "Error" not in driver.title, path
        _page_shot(driver, shots / f"{name}.png")
    # A token made on the page is shown once.
    driver.get(f"{url}/admin/tokens")
    driver.find_element(By.ID, "token-name").send_keys("nightly")
    driver.find_element(By.ID, "create-token").click()
    assert wait.until(ec.presence_of_element_located((By.ID, "token-value"))).get_attribute("value").startswith("dgm_")
    _page_shot(driver, shots / "admin-token-created.png")
    # A queued submission shows its place in the queue.
    sub = _upload(live_server, "alice", make_notebook(sleep=3))
    queued = _upload(live_server, "bob", make_notebook())
    driver.get(f"{url}/submissions/{queued}")
    wait.until(ec.presence_of_element_located((By.ID, "summary")))
    _page_shot(driver, shots / "submission-queued.png")
    _wait_graded(url, sub, auth)
    # Deactivating asks on a page of its own; the box must be ticked.
    driver.get(f"{url}/admin/users/bob")
    driver.find_element(By.ID, "deactivate").click()
    wait.until(ec.element_to_be_clickable((By.ID, "confirm-box"))).click()
    driver.find_element(By.ID, "confirm-button").click()
    wait.until(ec.presence_of_element_located((By.ID, "user-inactive")))
    driver.get(f"{url}/admin/users")
    _page_shot(driver, shots / "admin-users-deactivated.png")
    # Students see nothing of their results until release, where the course says so.
    driver.get(f"{url}/admin/course")
    driver.find_element(By.ID, "auto-hide").click()
    driver.find_element(By.ID, "save-visibility").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.ID, "login")))
    _login(driver, url, "alice")
    wait.until(ec.presence_of_element_located((By.ID, "provisional-note")))
    _page_shot(driver, shots / "student-home-hidden.png")
    assert driver.find_element(By.CSS_SELECTOR, "#grades td[data-assignment='hw1']").text.startswith("–")
    driver.get(f"{url}/submissions/{graded[0]}")
    assert "once the TAs release hw1" in wait.until(ec.presence_of_element_located((By.ID, "release-note"))).text
    _page_shot(driver, shots / "student-submission-hidden.png")
    # The staff's submission list pages through 120 more submissions.
    from server.models import Assignment, Submission, User

    with live_server.db.session() as s:
        bob = s.query(User).filter_by(username="bob").one()
        hw2 = s.query(Assignment).filter_by(name="hw2").one()
        s.add_all(
            Submission(user_id=bob.id, assignment_id=hw2.id, sha256="0" * 64, filename="x.ipynb", size=1)
            for _ in range(120)
        )
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.ID, "login")))
    _login(driver, url, "tina")
    wait.until(ec.presence_of_element_located((By.ID, "gradebook")))
    driver.get(f"{url}/submissions?assignment=hw2")
    wait.until(ec.element_to_be_clickable((By.ID, "older"))).click()
    wait.until(ec.presence_of_element_located((By.ID, "newer")))
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr[data-submission]")) == 20
    _page_shot(driver, shots / "submissions-page-2.png")
    logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
    assert not [e for e in logs if "Content Security Policy" in e.get("message", "")], logs
