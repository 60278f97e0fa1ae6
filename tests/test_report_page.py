"""The report page as a person sees it: opened in headless Chromium (Debian's `chromium`; .ci/run installs it) as a
file written by `report --html`, from the status endpoint's `GET /`, and drawn without plotly; every chart has its
data drawn, the page logs nothing and throws nothing, loads nothing from the network, and a screenshot of each is
kept (under $FRAC_TEST_ARTIFACTS when set, else the test's tmp dir; the path is printed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import requests

from fractrade_sync.channels.statusd import status_endpoint
from fractrade_sync.report.page import TITLES, page
from fractrade_sync.report.summary import build_from
from tests.conftest import run_cli
from tests.test_report import scripted_run

DRAWN = {"mark", "point", "js-line"}  # an SVG fallback's datum; a plotly bar or marker; a plotly line


class Charts(HTMLParser):
    """Each `<figure class="chart">`'s name -> how many drawn marks it holds; the page's recorded script error."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, int] = {}
        self.points: dict[str, int] = {}
        self.error: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag == "html":
            self.error = found.get("data-page-error")
        if tag == "figure" and "chart" in (found.get("class") or "").split():
            self._chart = found["data-chart"]
            self.marks[self._chart] = 0
            self.points[self._chart] = int(found["data-points"])
        elif self._chart is not None and DRAWN & set((found.get("class") or "").split()):
            self.marks[self._chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._chart = None


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("FRAC_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def open_in_chromium(url: str, screenshot: Path, profile: Path) -> tuple[Charts, list[str]]:
    """The page's DOM once its scripts ran, read into Charts, and every console line Chromium logged for it; a
    screenshot saved."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "install Chromium from the distribution's packages: apt-get install chromium (.ci/run does)"
    base = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--window-size=1280,2400",
    ]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    print(f"screenshot: {screenshot}")
    charts = Charts()
    charts.feed(dom.stdout)
    console = [line for line in (dom.stderr + shot.stderr).splitlines() if ":CONSOLE" in line]
    return charts, console


def every_chart_drawn(charts: Charts, console: list[str]) -> None:
    assert charts.error is None and console == []
    assert set(charts.marks) == set(TITLES)  # every chart is on the page
    for name, marks in charts.marks.items():
        assert charts.points[name] > 0 and marks > 0, f"{name}: nothing drawn"
    assert charts.marks["cumulative"] >= charts.points["cumulative"]  # a marker per change of the net PnL


def self_contained(html: str) -> None:
    """Nothing loaded from elsewhere: no external script, stylesheet or image."""
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", html, re.IGNORECASE)


def test_the_page_draws_every_chart_in_chromium(make_service, signals, sim, wallet, env, tmp_path):
    service = make_service()
    scripted_run(service, signals, sim, wallet)
    kept = artifacts(tmp_path)
    written = tmp_path / "report.html"
    done = run_cli(["report", "--html", str(written)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    html = written.read_text()
    self_contained(html)
    assert "Plotly.newPlot" in html  # the `report` extra is installed with the tests: plotly's charts
    every_chart_drawn(*open_in_chromium(written.as_uri(), kept / "report-file.png", tmp_path / "profile"))

    metrics, server = status_endpoint(service.settings, service.channels.probe, ("127.0.0.1", 0))
    server.start()
    try:
        url = "http://{}:{}/".format(*server.address)
        live = requests.get(url, timeout=10)
        assert live.status_code == 200 and live.headers["Content-Type"].startswith("text/html")
        assert '<meta http-equiv="refresh"' in live.text  # it reloads itself
        every_chart_drawn(*open_in_chromium(url, kept / "report-endpoint.png", tmp_path / "profile"))
    finally:
        server.stop()

    plain = tmp_path / "report-svg.html"  # without plotly: the same charts in inline SVG
    plain.write_text(page(build_from(Path(env["FRAC_STATE_DIR"]) / "journal.sqlite3"), use_plotly=False))
    assert "Plotly" not in plain.read_text()
    self_contained(plain.read_text())
    every_chart_drawn(*open_in_chromium(plain.as_uri(), kept / "report-svg.png", tmp_path / "profile"))
