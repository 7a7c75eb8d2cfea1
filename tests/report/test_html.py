import json
import shutil

import pytest

from guardrl.config import RunConfig, to_dict
from guardrl.report import render_html


@pytest.fixture
def report_path(tiny_run):
    return tiny_run / "report.html"


def test_report_is_self_contained(report_path):
    page = report_path.read_text()
    head, _, _ = page.partition("<pre>")  # the config dump may mention URLs; the page itself loads nothing
    assert 'src="http' not in page and 'href="http' not in page and "<script" not in page
    # visitation, rewards, learning curves, returns, safety, OPE vs truth
    assert head.count('src="data:image/png;base64,') == 6
    assert 'id="verdicts"' in page and "Dataset audit" in page and "Off-policy evaluation" in page
    gate = json.loads((report_path.parent / "gate.json").read_text())
    for name, d in gate["decisions"].items():
        tag = f'<span class="tag {d["decision"]}">{d["decision"]}</span>'
        assert f"<td>{name}</td><td>{tag}</td>" in page


def test_missing_artifacts_are_said_not_hidden(tmp_path):
    page = render_html("r", to_dict(RunConfig()), None, None, None, None, None, tmp_path)
    assert "No gate decisions" in page and "No audit" in page and "No off-policy evaluation" in page


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="scripts/test.sh installs Debian's chromium and chromium-driver")  # fmt: skip
def test_report_renders_in_headless_chromium(report_path, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2000",
                f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(report_path.as_uri())
        assert driver.title == "guardrl run tiny"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert len(images) == 6
        for alt, complete, width, height in images:
            assert complete and width > 100 and height > 100, alt  # decoded, not a broken-image icon
        table = driver.find_element(By.CSS_SELECTOR, "#verdicts table")
        assert table.is_displayed() and table.size["height"] > 40
        rows = table.find_elements(By.TAG_NAME, "tr")
        decisions = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
                     for r in rows[1:]}  # fmt: skip
        assert set(decisions) == {"bc", "cql"} and set(decisions.values()) <= {"PASS", "CAUTION", "FAIL"}
        # the verdict table is the first thing on the page: within the first screen
        assert table.location["y"] < 600
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()
