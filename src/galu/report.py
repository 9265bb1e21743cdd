"""One self-contained HTML page for one or more run (or sweep) directories.

Everything is inline — figures as base64 PNG, CSS, a few lines of JavaScript that sort tables
on a header click — so the file can be mailed, attached or opened offline. Per run: the
figures, the summary (mean over seeds, per cell of a sweep's grid) and the full results as
sortable tables, failures with their errors, the resolved config and grid, versions and
device, and timings.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from galu._validate import positive_int
from galu.runner.engine import summary_title
from galu.runner.rundir import RunDir, RunDirError, atomic_write_text
from galu.runner.sweep import read_failures

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav a{margin-right:1em}figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:560px;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.scroll{max-height:480px;overflow:auto;display:inline-block}
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:360px}
.meta td:first-child{text-align:left;font-weight:600}.fail{color:#a00}
"""

# Sort a table by the clicked column: numbers numerically, text alphabetically; click again to
# reverse. The state is in aria-sort, which the tests read.
_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _table(df: pd.DataFrame, max_rows: int, cls: str = "sortable") -> str:
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    note = ""
    if len(df) > max_rows:
        note = f"<p>First {max_rows} of {len(df)} rows; all are in results.csv.</p>"
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _meta(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in pairs
    )
    return f'<table class="meta">{rows}</table>'


def _summary(record: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame | None:
    from galu.experiments import get_experiment
    from galu.experiments.config import ConfigError
    from galu.runner.engine import summarize_cells

    try:
        cls = get_experiment(record["experiment"])
        return summarize_cells(cls, record["config"], record.get("grid") or {}, table)
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def _section(index: int, path: Path, max_rows: int) -> tuple[str, str]:
    rundir = RunDir(path)
    record = rundir.read_config()
    points = rundir.read_points()
    table = rundir.table_from_points(points)
    name = f"{record.get('experiment', '?')} — {path.name}"
    anchor = f"run{index}"
    parts = [f'<h2 id="{anchor}">{html.escape(name)}</h2>']
    seconds = [p.get("seconds", 0.0) for p in points]
    sweeps = []
    if (path / "sweeps.jsonl").exists():
        sweeps = [json.loads(x) for x in (path / "sweeps.jsonl").read_text().splitlines() if x]
    failures = read_failures(path)
    done_ids = {p["id"] for p in points}
    failures = [f for f in failures if f["id"] not in done_ids]
    versions = record.get("versions", {})
    parts.append(
        _meta(
            [
                ("directory", str(path.resolve())),
                ("experiment", record.get("experiment")),
                ("preset", record.get("preset")),
                ("created", record.get("created")),
                ("finished (point, seed) pairs", len(points)),
                ("failed", len(failures)),
                ("compute seconds (sum over points)", round(sum(seconds), 2)),
                (
                    "seconds per point (mean / max)",
                    f"{sum(seconds) / max(1, len(seconds)):.3f} / {max(seconds, default=0):.3f}",
                ),
                ("device", record.get("device")),
                ("python", record.get("python")),
                ("platform", record.get("platform")),
                ("git sha", record.get("git_sha")),
                *[(f"version: {k}", v) for k, v in versions.items()],
            ]
        )
    )
    if sweeps:
        parts.append("<h3>Sweep calls</h3>" + _table(pd.DataFrame(sweeps), max_rows))
    figs = sorted(rundir.fig_dir.rglob("*.png")) if rundir.fig_dir.exists() else []
    if figs:
        parts.append("<h3>Figures</h3>")
        for fig in figs:
            data = base64.b64encode(fig.read_bytes()).decode()
            caption = html.escape(str(fig.relative_to(rundir.fig_dir)))
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    if not table.empty:
        summary = _summary(record, table)
        if summary is not None and not summary.empty:
            title = summary_title(record.get("grid"))
            parts.append(f"<h3>Summary ({html.escape(title)})</h3>" + _table(summary, max_rows))
        parts.append("<h3>Results</h3>" + _table(table, max_rows))
    else:
        parts.append("<p>No finished points yet.</p>")
    if failures:
        frame = pd.DataFrame(
            [{"seed": f["seed"], **f["params"], "error": f["error"]} for f in failures]
        )
        parts.append('<h3 class="fail">Failures</h3>' + _table(frame, max_rows))
        parts.append(f"<pre>{html.escape(failures[0].get('traceback') or '')}</pre>")
    conf = {"config": record.get("config"), "grid": record.get("grid")}
    parts.append(f"<h3>Resolved config</h3><pre>{html.escape(json.dumps(conf, indent=2))}</pre>")
    return anchor, "\n".join(parts)


def build_report(run_dirs: Sequence[Path | str], out: Path | str, *, max_rows: int = 2000) -> Path:
    """Write the report for ``run_dirs`` to ``out`` (atomically) and return its path."""
    if not run_dirs:
        raise ValueError("`run_dirs` is empty: name at least one run or sweep directory.")
    positive_int("max_rows", max_rows)
    sections = []
    for i, d in enumerate(run_dirs):
        path = Path(d)
        if not (path / "config.json").exists():
            raise RunDirError(f"{path} is not a galu run directory (no config.json).")
        sections.append(_section(i, path, max_rows))
    nav = " ".join(f'<a href="#{a}">{html.escape(Path(d).name)}</a>' for (a, _), d in
                   zip(sections, run_dirs, strict=True))  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>galu report</title><style>{_CSS}</style></head><body>"
        f"<h1>galu report</h1><p>Built {stamp} from {len(run_dirs)} run(s). "
        f"Click a column header to sort.</p><nav>{nav}</nav>"
        + "".join(body for _, body in sections)
        + f"<script>{_JS}</script></body></html>"
    )
    out = Path(out)
    atomic_write_text(out, page)
    return out
