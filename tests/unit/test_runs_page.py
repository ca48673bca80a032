"""The page for a directory of runs (``phasewatch report DIR``, ``phasewatch view DIR``):
its content, its server, and the page driven in headless Chromium (sort, filter, pick a
key and a colour field, refresh while runs train, no console errors)."""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.cli.view import make_server
from phasewatch.report.runs_page import build_runs_page, runs_data
from phasewatch.store.run import create_run_at, tidy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEIGHT_DECAY = {"wd-a": 0.1, "wd-b": 1.0, "wd-c": 0.3}


def fake_run(root: Path, name: str, wd: float, seed: int, onset: int | None) -> Path:
    """A finished grokking-like run: config, status, metrics and events, no training."""
    task = {"p": 17, "weight_decay": wd}
    cfg = {"phenomenon": "grokking", "preset": "quick", "task": task, "train": {"seed": seed}}
    rd = create_run_at(root / name, cfg, {"python": "3"})
    steps = range(0, 101, 10)
    rows = [(s, "test/acc", 1 / (1 + math.exp(-(s - (onset or 200)) / 8))) for s in steps]
    rows += [(s, "train/loss", 3.0 * math.exp(-s / (20 + 40 * wd))) for s in steps]
    rows += [(s, "loss/pos/1", 1.0) for s in steps]  # a numbered family: not a curve key
    rd.write_metrics(tidy(rows))
    rd.write_events({"onsets": {"generalisation": {"step": onset, "rule": "test/acc >= 0.5"}}})
    rd.set_status("done", 100)
    (rd.path / "report.html").write_text("<html>run report</html>")
    return rd.path


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    for i, (name, wd) in enumerate(WEIGHT_DECAY.items()):
        fake_run(root, name, wd, seed=i, onset=None if i == 1 else 40 + 20 * i)
    return root


def embedded(page: str) -> dict:
    m = re.search(r"<script id='runs-data' type='application/json'>(.*?)</script>", page, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_on_a_directory_writes_a_self_contained_index(sweep):
    r = CliRunner().invoke(app, ["report", str(sweep)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(sweep / "index.html")
    page = (sweep / "index.html").read_text()
    assert "<script src=" not in page and "<link" not in page  # nothing fetched: offline
    assert page.count("plotly.js v") == 1  # plotly inlined once
    data = embedded(page)
    assert data["columns"][:6] == ["run", "phenomenon", "preset", "seed", "steps", "status"]
    assert "onset/generalisation" in data["columns"]
    assert data["keys"] == ["test/acc", "train/loss"]  # preferred first, no loss/pos/<n>
    assert "weight_decay" in data["fields"] and "seed" in data["fields"]
    assert data["color"] == "weight_decay"  # the config field that differs between runs
    by_path = {r["path"]: r for r in data["runs"]}
    assert set(by_path) == set(WEIGHT_DECAY)
    assert by_path["wd-a"]["report"] == "wd-a/report.html"
    assert by_path["wd-a"]["onsets"] == {"generalisation": 40}
    assert by_path["wd-b"]["onsets"] == {}  # never reached
    assert by_path["wd-c"]["row"]["weight_decay"] == 0.3
    steps, values = by_path["wd-a"]["curves"]["test/acc"]
    assert steps == list(range(0, 101, 10)) and len(values) == 11


def test_empty_directory_and_missing_directory(tmp_path):
    data = runs_data(tmp_path)
    assert data["runs"] == [] and data["keys"] == []
    assert build_runs_page(tmp_path).exists()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.fixture
def server(sweep):
    srv = make_server(sweep, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_view_serves_the_page_and_a_fresh_runs_json(server, sweep):
    with urllib.request.urlopen(f"{server}/index.html") as r:
        assert b"runs-data" in r.read()
    fake_run(sweep, "wd-d", 3.0, seed=9, onset=60)
    with urllib.request.urlopen(f"{server}/runs.json") as r:
        assert r.headers["Cache-Control"] == "no-store"
        data = json.loads(r.read())
    assert len(data["runs"]) == 4  # regenerated per request: the new run is there
    with urllib.request.urlopen(f"{server}/wd-a/report.html") as r:
        assert r.read() == b"<html>run report</html>"


# ---- headless Chromium -------------------------------------------------------------------
@pytest.fixture
def driver(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium or chromedriver not installed (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(CHROMEDRIVER))
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def column(driver, name: str) -> list[str]:
    heads = [th.get_attribute("data-col") for th in driver.find_elements("css selector", "th")]
    i = heads.index(name)
    rows = driver.find_elements("css selector", "#runs tbody tr")
    return [r.find_elements("tag name", "td")[i].text for r in rows]


def plot(driver) -> dict:
    return driver.execute_script(
        "var g = document.getElementById('curves');"
        "return {title: g.layout.title.text, traces: g.data.map(function (t) {"
        "return {name: t.name, mode: t.mode, color: (t.line || t.marker).color,"
        " n: t.x.length}; })};"
    )


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(check, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def test_page_sorts_filters_and_picks_a_key_in_chromium(driver, sweep):
    from selenium.webdriver.support.ui import Select

    build_runs_page(sweep)
    driver.get((sweep / "index.html").as_uri())
    wait_for(lambda: len(driver.find_elements("css selector", "#runs tbody tr")) == 3)
    header = "th[data-col='onset/generalisation']"  # the head is redrawn: find it anew
    driver.find_element("css selector", header).click()
    assert column(driver, "onset/generalisation") == ["40", "80", ""]  # missing last
    driver.find_element("css selector", header).click()
    assert column(driver, "onset/generalisation") == ["80", "40", ""]
    assert "desc" in driver.find_element("css selector", header).get_attribute("class")
    drawn = plot(driver)
    assert drawn["title"] == "test/acc"
    assert [t["mode"] for t in drawn["traces"]].count("lines") == 3
    assert [t["mode"] for t in drawn["traces"]].count("markers") == 2  # onsets of a and c

    box = driver.find_element("id", "filter")
    box.send_keys("wd-b")
    assert column(driver, "run") == ["wd-b"]
    assert driver.find_element("id", "count").text == "1 of 3 runs"
    assert len(plot(driver)["traces"]) == 1  # curves follow the filter
    box.clear()
    box.send_keys("x")  # clear() fires no input event: type, then erase
    box.send_keys("\b")
    assert len(column(driver, "run")) == 3

    Select(driver.find_element("id", "key")).select_by_visible_text("train/loss")
    drawn = plot(driver)
    assert drawn["title"] == "train/loss"
    lines = {t["name"]: t["color"] for t in drawn["traces"] if t["mode"] == "lines"}
    assert len(set(lines.values())) == 3 and any("weight_decay=0.3" in n for n in lines)
    Select(driver.find_element("id", "color")).select_by_visible_text("status")
    lines = {t["name"]: t["color"] for t in plot(driver)["traces"] if t["mode"] == "lines"}
    assert len(set(lines.values())) == 1 and all("status=done" in n for n in lines)
    link = driver.find_element("css selector", "tr[data-run='wd-a'] a")
    assert link.get_attribute("href").endswith("/sweep/wd-a/report.html")
    assert severe(driver) == []


def test_served_page_refreshes_while_runs_train(driver, server, sweep):
    driver.get(f"{server}/index.html")
    wait_for(lambda: len(driver.find_elements("css selector", "#runs tbody tr")) == 3)
    driver.find_element("css selector", "th[data-col='seed']").click()
    fake_run(sweep, "wd-d", 3.0, seed=9, onset=60)
    wait_for(lambda: len(driver.find_elements("css selector", "#runs tbody tr")) == 4)
    assert column(driver, "seed") == ["0", "1", "2", "9"]  # the sort survives the refresh
    assert severe(driver) == []
