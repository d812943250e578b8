"""The HTML report in a real browser (headless Chromium through Selenium)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from cmhbench.cli import main

pytestmark = pytest.mark.slow  # drives a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        message = "headless Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install them")
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-run")
    assert main(["run", "--methods", "random,cca-itq", "--bits", "8,16,32", "--seeds", "0,1", "--preset", "quick",
                 "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    return out / "report" / "index.html"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = webdriver.ChromeService(executable_path=chromedriver)
    browser = webdriver.Chrome(options=options, service=service)
    yield browser
    browser.quit()


def _rows(driver, table_index=0):
    table = driver.find_elements("css selector", "table.leaderboard")[table_index]
    return table, [[td.text for td in tr.find_elements("tag name", "td")]
                   for tr in table.find_elements("css selector", "tbody tr")]


def test_page_loads_without_errors_or_network(driver, report):
    driver.get_log("performance")  # drain what the browser did before our page (its new-tab page)
    driver.get_log("browser")
    driver.get(report.as_uri())
    assert "cmhbench leaderboard" in driver.title
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    page = [url for url in requests if not url.startswith(("chrome:", "about:"))]  # browser-internal
    assert page and all(url.startswith(("file:", "data:")) for url in page), page


def test_every_image_renders(driver, report):
    driver.get(report.as_uri())
    images = driver.find_elements("css selector", ".figures img")
    assert len(images) >= 4
    widths = [driver.execute_script("return arguments[0].naturalWidth", img) for img in images]
    assert all(w > 0 for w in widths), widths


def test_sorting_a_column_reorders_rows(driver, report):
    driver.get(report.as_uri())
    table, rows = _rows(driver)
    header = table.find_elements("css selector", "thead th")[1]
    header.click()
    _, ascending = _rows(driver)
    values = [float(r[1].split()[0]) for r in ascending]
    assert values == sorted(values)
    header.click()
    _, descending = _rows(driver)
    assert [r[0] for r in descending] == [r[0] for r in ascending][::-1]


def test_switching_the_metric_changes_the_numbers(driver, report):
    from selenium.webdriver.support.ui import Select

    driver.get(report.as_uri())
    _, before = _rows(driver)
    picker = Select(driver.find_element("id", "metric"))
    assert {o.text for o in picker.options} >= {"map@all", "map@50"}
    picker.select_by_visible_text("map@50")
    _, after = _rows(driver)
    assert before != after
    assert "map@50" in driver.find_element("css selector", "#tables h3").text


def test_intervals_marks_and_the_ranking_are_shown(driver, report):
    driver.get(report.as_uri())
    _, plain = _rows(driver)
    assert all("[" not in text for row in plain for text in row)
    driver.find_element("id", "intervals").click()
    _, with_intervals = _rows(driver)
    assert all(text.count("[") == 1 for row in with_intervals for text in row[1:])
    # random is far behind cca-itq: none of its entries carries the "not significantly different" mark
    table, _ = _rows(driver)
    random_row = next(tr for tr in table.find_elements("css selector", "tbody tr")
                      if tr.find_element("tag name", "td").text == "random")
    assert random_row.find_elements("css selector", "td.best") == []
    assert random_row.find_elements("css selector", "td.tied") == []
    ranking = driver.find_elements("css selector", "#ranking table.ranking tbody tr")
    assert [tr.find_elements("tag name", "td")[0].text for tr in ranking] == ["cca-itq", "random"]
    assert "No Friedman test" in driver.find_element("id", "ranking").text


def test_published_values_render_beside_ours(driver, tmp_path):
    import pandas as pd

    from cmhbench.report.html import to_html

    frame = pd.DataFrame([dict(key=f"k{s}", dataset="wikipedia", protocol="wiki", database_coding="unified",
                               features="raw", method="cmfh", bits=16, seed=s, status="ok", fidelity="paper",
                               kind="shallow", release_files="verified", **{"i2t/map@50": 0.26, "t2i/map@50": 0.61})
                          for s in (0, 1)])
    page = tmp_path / "published.html"
    page.write_text(to_html(frame, metric="map@50", published=True), encoding="utf-8")
    driver.get_log("browser")
    driver.get(page.as_uri())
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    tables = driver.find_elements("css selector", "table.published")
    rows = [[td.text for td in tr.find_elements("tag name", "td")] for t in tables
            for tr in t.find_elements("css selector", "tbody tr")]
    assert [(r[0], r[3], r[4]) for r in rows] == [("cmfh", "0.251", "+0.0090"), ("cmfh", "0.595", "+0.0150")]
    assert all(r[5] == "yes: within ±0.03" for r in rows)
