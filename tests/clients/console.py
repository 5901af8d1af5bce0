"""The web console in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven through
selenium. Opens the console of a running `basalt serve` (births loaded, one Kafka ingestion submitted), runs a
query with Ctrl-Enter, checks the rows, the sort, the CSV copy and the chart, shows EXPLAIN, the table list with a
table's columns and segments, and the ingestion page with pause and resume. Screenshots go to the directory given.

    python3 tests/clients/console.py HTTP_PORT SCREENSHOT_DIR
"""
import json
import os
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

port, shots = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
os.makedirs(shots, exist_ok=True)

opts = webdriver.ChromeOptions()
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]:
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(driver, 20)


def shot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def cells():
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#results tr")[1:]]


try:
    driver.get(base + "/")
    assert driver.title == "basalt console", driver.title
    # Nothing is fetched from outside the server (the page must work offline).
    html = driver.page_source
    assert "https://" not in html and "http://" not in html.replace(base, ""), "external URL in the console"

    # A query run with Ctrl-Enter: rows, status, chart.
    sql = driver.find_element(By.ID, "sql")
    sql.send_keys("SELECT gender, COUNT(*) AS n FROM births GROUP BY gender ORDER BY gender")
    sql.send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(lambda d: len(cells()) == 2)
    assert cells() == [["boy", "39245"], ["girl", "36446"]], cells()
    assert driver.find_element(By.ID, "status").text.startswith("2 rows in"), driver.find_element(By.ID, "status").text
    svg = driver.find_element(By.ID, "chart")
    assert svg.get_attribute("data-kind") == "bar"
    assert len(svg.find_elements(By.TAG_NAME, "rect")) == 2
    # Sorting by a header: n descending after two clicks.
    header = driver.find_elements(By.CSS_SELECTOR, "#results th")[1]
    header.click()
    assert [r[1] for r in cells()] == ["36446", "39245"], cells()
    driver.find_elements(By.CSS_SELECTOR, "#results th")[1].click()
    assert [r[1] for r in cells()] == ["39245", "36446"], cells()
    driver.find_element(By.ID, "copy-csv").click()
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("copied"))
    csv = driver.find_element(By.ID, "status").get_attribute("data-csv")
    assert csv.splitlines() == ["gender,n", "boy,39245", "girl,36446"], csv
    shot("query-bar-chart")

    # A time series draws a line; the history keeps both queries.
    sql.clear()
    sql.send_keys("SELECT DATE_TRUNC('year', ds) AS y, SUM(num) AS births FROM births GROUP BY 1 ORDER BY 1")
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: d.find_element(By.ID, "chart").get_attribute("data-kind") == "line")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart polyline")) == 1
    assert len(cells()) > 10, cells()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#history li")) == 2
    shot("query-line-chart")

    # An error is shown, not thrown.
    sql.clear()
    sql.send_keys("SELECT nosuch FROM births")
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: "nosuch" in d.find_element(By.ID, "error").text)

    # EXPLAIN as a readable plan.
    sql.clear()
    sql.send_keys("SELECT state, SUM(num) FROM births WHERE gender = 'girl' GROUP BY state")
    driver.find_element(By.ID, "explain").click()
    plan = wait.until(ec.visibility_of_element_located((By.ID, "plan")))
    assert "births" in plan.text, plan.text
    shot("explain")

    # Tables: the list, then one table's columns and segments.
    driver.find_element(By.ID, "nav-tables").click()
    link = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#tables a[data-table='births']")))
    row = link.find_element(By.XPATH, "./../..").text
    assert "75691" in row, row
    link.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#segments tr")) > 1)
    columns = [tr.text for tr in driver.find_elements(By.CSS_SELECTOR, "#columns tr")]
    assert any(c.startswith("gender") for c in columns), columns
    shot("tables")

    # Ingestion: the submitted ingestion, paused and resumed from the page.
    driver.find_element(By.ID, "nav-ingestion").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".ingestion[data-id='clicks']"))
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[data-act='pause']")))
    shot("ingestion")
    button.click()

    def state():
        with urllib.request.urlopen(f"{base}/v1/ingest/clicks") as r:
            return json.load(r)["state"]

    wait.until(lambda d: state() == "paused")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-act='resume']"))
    shot("ingestion-paused")
    driver.find_element(By.CSS_SELECTOR, "button[data-act='resume']").click()
    wait.until(lambda d: state() != "paused")
    print("console: query, sort, CSV, bar and line charts, EXPLAIN, tables, segments, ingestion pause/resume ok")
except Exception:
    shot("failure")
    print(driver.page_source[:4000], file=sys.stderr)
    raise
finally:
    driver.quit()
