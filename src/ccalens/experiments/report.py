"""``runs/index.html``: every reproduced figure and a table of the paper's claims, offline."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .pipeline import atomic_write_text

ORDER = ("fig1", "fig1-rnn", "fig2", "fig3", "fig4", "fig5", "fig6", "seq")


def write_index(root) -> Path:
    """Collect ``root/<figure>/claims.json`` and the figures beside them into one static page."""
    root = Path(root)
    found = sorted((p for p in root.glob("*/claims.json")),
                   key=lambda p: (ORDER.index(p.parent.name) if p.parent.name in ORDER else 99, p.parent.name))
    rows, sections = [], []
    for path in found:
        figure = path.parent.name
        doc = json.loads(path.read_text())
        scale = doc.get("scale", {})
        where = scale.get("name", "") if isinstance(scale, dict) else str(scale)
        for c in doc.get("claims", []):
            verdict = "held" if c["held"] else "not held"
            rows.append(
                f"<tr class='{'held' if c['held'] else 'not'}'><td>{html.escape(figure)}</td>"
                f"<td>{html.escape(c['name'])}</td><td>{html.escape(c['claim'])}</td>"
                f"<td><code>{html.escape(c['rule'])}</code></td>"
                f"<td><code>{html.escape(json.dumps(c['statistic'], default=str)[:400])}</code></td>"
                f"<td>{verdict}</td></tr>"
            )
        images = "".join(f"<img src='{html.escape(figure)}/{html.escape(png.name)}' alt='{html.escape(figure)}'>"
                         for png in sorted(path.parent.glob("*.png")))
        sections.append(
            f"<h2 id='{html.escape(figure)}'>{html.escape(figure)}</h2>"
            f"<p>scale: {html.escape(str(where))}; dataset: {html.escape(str(doc.get('dataset', '')))}; "
            f"command: <code>{html.escape(str(doc.get('command', '')))}</code></p>{images}"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ccalens: the paper's findings, reproduced</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }}
tr.held td:last-child {{ background: #d8f0d8; }} tr.not td:last-child {{ background: #f6d6d6; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
code {{ font-size: 0.9em; }}
</style></head><body>
<h1>Morcos, Raghu &amp; Bengio (2018), reproduced with ccalens</h1>
<p>Each claim is decided by the rule shown, fixed before the run. Figures: {", ".join(
        f"<a href='#{html.escape(p.parent.name)}'>{html.escape(p.parent.name)}</a>" for p in found) or "none yet"}.</p>
<table><tr><th>figure</th><th>claim</th><th>in words</th><th>rule</th><th>statistic</th><th>verdict</th></tr>
{"".join(rows)}
</table>
{"".join(sections)}
</body></html>
"""
    out = root / "index.html"
    atomic_write_text(out, page)
    return out


def collect(root, dest) -> list[Path]:
    """Copy every figure's PNG, CSV and claims.json (not the networks or stores) to ``dest``,
    with an index page of its own: the small, committable record of a run."""
    import shutil

    root, dest = Path(root), Path(dest)
    copied = []
    for claims in sorted(root.glob("*/claims.json")):
        figure = claims.parent.name
        (dest / figure).mkdir(parents=True, exist_ok=True)
        for path in [claims, *sorted(claims.parent.glob("*.png")), *sorted(claims.parent.glob("*.csv"))]:
            shutil.copy2(path, dest / figure / path.name)
            copied.append(dest / figure / path.name)
    copied.append(write_index(dest))
    return copied
