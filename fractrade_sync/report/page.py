"""The report (report.py) as one self-contained HTML page that opens offline: the totals, cumulative net PnL over
time, net PnL per day, the slippage and latency distributions, and the table of actions.

The charts are plotly's (a dependency), its JavaScript embedded once in the page (no CDN: it works offline and
behind a firewall). Where plotly cannot be imported (a distribution's package without it), and with
`use_plotly=False`, the same charts are drawn as plain inline SVG (report/svg.py): the page never depends on anything
it does not carry. Each chart is a
`<figure class="chart" data-chart="NAME">`; a chart without data says so instead of drawing an empty frame."""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from fractrade_sync.report import svg as report_svg

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.totals { display: flex; gap: 2em; flex-wrap: wrap; }
.totals div { font-size: 1.1em; } .totals b { display: block; font-size: 1.5em; }
figure.chart { margin: 1em 0; max-width: 900px; } figcaption { font-weight: 600; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .empty { color: #888; }
"""
# any script error on the page is written into the page itself, where a test (or a person) sees it
ERROR_TRAP = (
    "<script>window.addEventListener('error', function (e) {"
    " document.documentElement.setAttribute('data-page-error', String(e.message)); });</script>"
)
COLUMNS = (
    "time",
    "action",
    "symbol",
    "side",
    "size",
    "outcome",
    "avg_px",
    "ref_price",
    "arrival_mid",
    "slippage_bps",
    "slippage_vs_mid_bps",
    "latency_ms",
    "realized_pnl",
    "fees",
)


def _plotly() -> Any | None:
    """plotly's graph objects, or None where plotly cannot be imported."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    return go


def series(report: dict[str, Any]) -> dict[str, tuple[list, list]]:
    """What each chart draws: name -> (labels, values)."""
    cumulative = report["cumulative"]
    days = report["per_day"]
    lines = report["executions"]
    return {
        "cumulative": ([c["time"] for c in cumulative], [float(c["net_pnl"]) for c in cumulative]),
        "per_day": (list(days), [float(d["net_pnl"]) for d in days.values()]),
        "slippage": ([], [x["slippage_bps"] for x in lines if x["slippage_bps"] is not None]),
        "slippage_vs_mid": ([], [x["slippage_vs_mid_bps"] for x in lines if x["slippage_vs_mid_bps"] is not None]),
        "latency": ([], [x["latency_ms"] for x in lines if x["latency_ms"] is not None]),
    }


TITLES = {
    "cumulative": "Cumulative net PnL (USDC)",
    "per_day": "Net PnL per day (UTC, USDC)",
    "slippage": "Slippage against the signal's price (bps; positive: worse for you)",
    "slippage_vs_mid": "Slippage against the mid when the action arrived (bps)",
    "latency": "Latency, frame received to the exchange's answer (ms)",
}


def _plotly_chart(go: Any, name: str, labels: list, values: list) -> str:
    if name == "cumulative":
        trace = go.Scatter(x=labels, y=values, mode="lines+markers", name="net PnL")
    elif name == "per_day":
        colors = ["#2ca02c" if v >= 0 else "#d62728" for v in values]
        trace = go.Bar(x=labels, y=values, marker_color=colors, name="net PnL")
    else:
        trace = go.Histogram(x=values, nbinsx=20, name=name)
    figure = go.Figure(trace)
    if name == "per_day":
        figure.update_xaxes(type="category")  # one bar per UTC date, not a time axis
    figure.update_layout(template="plotly_white", height=280, margin={"l": 50, "r": 20, "t": 10, "b": 40})
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{name}",
        config={"displaylogo": False, "responsive": True},
    )


def _svg_chart(name: str, labels: list, values: list) -> str:
    if name == "cumulative":
        return report_svg.line(TITLES[name], labels, values)
    if name == "per_day":
        return report_svg.bars(TITLES[name], labels, values)
    return report_svg.histogram(TITLES[name], values)


def charts(report: dict[str, Any], go: Any | None) -> str:
    """Every chart's figure: plotly's when `go` is given, else inline SVG."""
    draw: Callable[[str, list, list], str] = (lambda *a: _plotly_chart(go, *a)) if go is not None else _svg_chart
    out = []
    for name, (labels, values) in series(report).items():
        body = draw(name, labels, values) if values else '<p class="empty">no data yet</p>'
        out.append(
            f'<figure class="chart" data-chart="{name}" data-points="{len(values)}">'
            f"<figcaption>{escape(TITLES[name])}</figcaption>{body}</figure>"
        )
    return "\n".join(out)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    kind = ' class="num"' if isinstance(value, (int, float)) or text[:1].isdigit() or text[:1] == "-" else ""
    return f"<td{kind}>{escape(text)}</td>"


def table(report: dict[str, Any]) -> str:
    """The table of actions, newest first."""
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    rows = ["<tr>" + "".join(_cell(line.get(c)) for c in COLUMNS) + "</tr>" for line in reversed(report["executions"])]
    return f'<table class="actions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def totals(report: dict[str, Any]) -> str:
    figures = [
        ("net PnL", report["net_pnl"]),
        ("realized PnL", report["realized_pnl"]),
        ("fees", report["fees"]),
        ("funding", report["funding"]),
    ]
    cells = "".join(f"<div>{escape(name)}<b>{escape(value)}</b></div>" for name, value in figures)
    latency = report["latency_ms"]
    slip = report["slippage_bps"]
    cells += f"<div>latency p50 / p95 / worst<b>{latency['p50']} / {latency['p95']} / {latency['max']} ms</b></div>"
    cells += f"<div>slippage p50 / p95 / worst<b>{slip['p50']} / {slip['p95']} / {slip['max']} bps</b></div>"
    counts = ", ".join(f"{escape(k)} {v}" for k, v in report["actions"].items()) or "none"
    return f'<section class="totals">{cells}</section><p>actions: {counts}</p>'


def page(report: dict[str, Any], refresh: int | None = None, use_plotly: bool = True) -> str:
    """The whole page; `refresh` (seconds) makes it reload itself (the status endpoint's GET /)."""
    go = _plotly() if use_plotly else None
    script = ""
    if go is not None:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"  # (its text never contains "</script>")
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    span = f"since {report['since']}" if report["since"] else "since the first action"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{meta}'
        f"<title>fractrade-sync: how is my agent doing?</title><style>{STYLE}</style>{ERROR_TRAP}{script}</head>"
        f"<body><h1>How is my agent doing?</h1><p>{escape(span)}, until {escape(report['until'])}; USDC.</p>"
        f"{totals(report)}{charts(report, go)}<h2>Actions</h2>{table(report)}</body></html>"
    )
