"""The app in a real headless Chromium: generate, switch to Saliency, run it, and see highlighted tokens."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,1600",
]  # fmt: skip


@pytest.fixture
def driver():
    """A headless Chromium driven by Selenium, with a fresh profile."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        drv = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield drv
        finally:
            drv.quit()


def test_generate_then_saliency_shows_highlighted_tokens(app_server, driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = app_server
    wait = WebDriverWait(driver, 180)
    driver.get(url)
    wait.until(ec.element_to_be_clickable((By.ID, "generate-btn"))).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#generate-out .ecco-root"))

    tab = wait.until(ec.element_to_be_clickable((By.XPATH, "//button[@role='tab'][normalize-space()='Saliency']")))
    tab.click()
    wait.until(ec.element_to_be_clickable((By.ID, "saliency-btn"))).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#saliency-out .ecco-saliency .ecco-input"))

    colours = driver.execute_script(
        "return [...document.querySelectorAll('#saliency-out .ecco-input .ecco-tt')]"
        ".map(e => getComputedStyle(e).backgroundColor);"
    )
    highlighted = [c for c in colours if c not in ("rgba(0, 0, 0, 0)", "transparent")]
    assert colours and len(highlighted) >= 2, colours  # the input tokens carry the saliency colours
    assert len(set(highlighted)) >= 2  # and they differ: the strength shows
    assert driver.find_element(By.ID, "saliency-out").is_displayed()  # saliency found the run Generate made

    shot = tmp_path / "app-saliency.png"
    driver.save_screenshot(str(shot))
    assert shot.exists() and shot.stat().st_size > 10_000
