"""The HTML report: self-contained, and it works in a real headless browser."""

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from galu.cli import app
from galu.report import build_report
from galu.runner.sweep import run_sweep

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NO_BROWSER = (
    "no headless browser here: install Debian's chromium and chromium-driver "
    "(`make browser`, as root) to run the report's browser test"
)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sweep"
    run_sweep(
        "memorization",
        preset="smoke",
        grid=["k=2,4", "lr=0.01,0.02"],
        overrides=["steps=30", "hill_climb_steps=2", "models=relu,galu-exact"],
        out=out,
        progress=False,
    )
    return out


def test_report_is_self_contained_and_holds_every_part(sweep_dir, tmp_path):
    page = build_report([sweep_dir], tmp_path / "r.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2  # one figure per lr cell
    assert not re.search(r'(src|href)="(http|//)', page)  # nothing fetched from anywhere
    for part in ("Summary (mean over seeds, per lr)", "Results", "Resolved config",
                 "version: torch", "compute seconds", "Sweep calls"):  # fmt: skip
        assert part in page, part
    assert page.count('class="sortable"') == 3  # sweep calls, summary, results


def test_report_cli_and_errors(sweep_dir, tmp_path):
    res = CliRunner().invoke(app, ["report", str(sweep_dir), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 0 and (tmp_path / "x.html").exists()
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "y.html")])
    assert res.exit_code == 2 and "is not a galu run directory" in " ".join(res.output.split())


def test_report_in_headless_chromium(sweep_dir, tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(NO_BROWSER)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) missing")
    from selenium.webdriver.common.by import By

    page = build_report([sweep_dir], tmp_path / "report.html")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
    try:
        driver.set_window_size(1400, 1000)
        driver.get(page.resolve().as_uri())
        assert driver.title == "galu report"
        # Figures are present and decoded.
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == 2
        for img in images:
            assert driver.execute_script("return arguments[0].naturalWidth", img) > 100
        # Sort the results table by `value`: ascending, then descending on a second click.
        table = driver.find_elements(By.CSS_SELECTOR, "table.sortable")[-1]
        headers = [h.text for h in table.find_elements(By.TAG_NAME, "th")]
        col = headers.index("value")
        header = table.find_elements(By.TAG_NAME, "th")[col]

        def column():
            return [
                float(r.find_elements(By.TAG_NAME, "td")[col].text)
                for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            ]

        before = column()
        assert before != sorted(before)  # the test would pass vacuously otherwise
        header.click()
        assert header.get_attribute("aria-sort") == "ascending" and column() == sorted(before)
        header.click()
        assert column() == sorted(before, reverse=True)
        driver.save_screenshot(str(tmp_path / "report.png"))  # for a human to look at
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        driver.quit()


def test_a_sweep_summary_is_split_by_its_grid_axis(sweep_dir):
    from galu.runner import plot_run

    _, summary = plot_run(sweep_dir)
    assert list(summary.columns[:2]) == ["lr", "kd/m"]
    assert sorted(set(summary["lr"])) == [0.01, 0.02]
    # Each lr's relu column is that lr's own mean (not the mean over both rates).
    table = pd.read_csv(sweep_dir / "results.csv")
    for lr, part in summary.groupby("lr"):
        rows = table[(table.lr == lr) & (table.model == "relu") & (table.metric == "train_mse")]
        means = rows.assign(r=rows.k * rows.d / rows.m).groupby("r")["value"].mean()
        assert part["relu"].tolist() == pytest.approx(means.tolist(), rel=1e-12)
