"""What the platform's own pages in the Airflow UI share: a page frame styled like Airflow, escaping,
and hand-drawn SVG charts (rendered on the server: no script, no CDN)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Final

#: Airflow 3's UI colours and type, so the pages look like part of it inside its iframe.
_CSS: Final = """
:root { color-scheme: light; --blue:#017cee; --border:#e2e8f0; --muted:#718096; --bg:#f7fafc; }
* { box-sizing: border-box; }
body { font-family: Inter, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
       padding: 16px 24px; color: #1a202c; background: #fff; font-size: 14px; }
h1 { font-size: 22px; font-weight: 600; margin: 0 0 12px; }
h2 { font-size: 16px; font-weight: 600; margin: 20px 0 8px; }
a { color: var(--blue); text-decoration: none; } a:hover { text-decoration: underline; }
.status { border-radius: 6px; padding: 10px 14px; margin: 0 0 14px; font-weight: 500; }
.ok { background: #f0fff4; border: 1px solid #9ae6b4; color: #22543d; }
.bad { background: #fff5f5; border: 1px solid #feb2b2; color: #742a2a; }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; background: var(--bg);
       border: 1px solid var(--border); border-radius: 6px; padding: 10px 12px; margin-bottom: 12px; }
form label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 3px; }
input, select { font: inherit; padding: 5px 8px; border: 1px solid #cbd5e0; border-radius: 4px;
       background: #fff; min-width: 130px; }
button, .button { font: inherit; background: var(--blue); color: #fff; border: 0; border-radius: 4px;
       padding: 6px 14px; cursor: pointer; display: inline-block; }
.button.secondary { background: #fff; color: var(--blue); border: 1px solid var(--blue); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted);
     background: var(--bg); position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.muted { color: var(--muted); font-size: 12px; }
.tag { display: inline-block; background: #ebf8ff; color: #2b6cb0; border-radius: 10px; padding: 0 8px;
       font-size: 12px; margin: 1px 2px 1px 0; }
.pager { display: flex; gap: 10px; align-items: center; margin: 10px 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--border); border-radius: 6px; padding: 10px 12px; }
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


_PALETTE: Final = ("#017cee", "#38a169", "#dd6b20", "#805ad5", "#d53f8c", "#319795", "#718096")


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    unit: str = "",
    width: int = 460,
    height: int = 220,
) -> str:
    """Grouped bars: one group per category (e.g. a week), one bar per series (e.g. a partner)."""
    left, bottom, top = 44, 36, 28
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((v for values in series.values() for v in values), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{esc(_fmt(peak))}{esc(unit)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    if not categories or not series:
        parts.append(f'<text x="{left + 10}" y="{top + plot_h // 2}" fill="#718096">no entries</text>')
    else:
        group_w = plot_w / len(categories)
        bar_w = max(1.0, group_w * 0.8 / len(series))
        for ci, category in enumerate(categories):
            x0 = left + ci * group_w + group_w * 0.1
            for si, (name, values) in enumerate(series.items()):
                value = values[ci]
                h = plot_h * value / peak
                parts.append(
                    f'<rect x="{x0 + si * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                    f'height="{h:.1f}" fill="{_PALETTE[si % len(_PALETTE)]}">'
                    f"<title>{esc(name)} {esc(category)}: {esc(_fmt(value))}{esc(unit)}</title></rect>"
                )
            if len(categories) <= 12 or ci % max(1, len(categories) // 8) == 0:
                parts.append(
                    f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                    f"{esc(category)}</text>"
                )
        for si, name in enumerate(series):
            x = left + si * 110
            parts.append(
                f'<rect x="{x}" y="{height - 12}" width="10" height="10" '
                f'fill="{_PALETTE[si % len(_PALETTE)]}"/>'
                f'<text x="{x + 14}" y="{height - 3}">{esc(name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
