"""The pages in a real headless chromium: a student uploads and sees the score; the TA sees the grade."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.testing import make_notebook

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
    assert row.find_element(By.CSS_SELECTOR, ".total").text == "34"
    assert row.find_element(By.CSS_SELECTOR, ".final").text == "2"  # floor(34 / 8 - 2)
    assert "manual" in row.text  # the discussion item waits for the TA
    # Sorting by total puts alice (34) above bob (0) in descending order.
    header = driver.find_element(By.XPATH, "//table[@id='gradebook']//th[normalize-space(text())='Total']")
    header.click()
    header.click()
    first = driver.find_element(By.CSS_SELECTOR, "#gradebook tbody tr")
    assert first.get_attribute("data-username") == "alice"
