"""``runs/index.html``: every reproduced figure and a table of the paper's claims, offline."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .pipeline import atomic_write_text

ORDER = ("fig1", "fig1-rnn", "fig2", "fig3", "fig4", "fig5", "fig6", "seq")


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.3g}" if isinstance(value, float) else str(value)
    return html.escape(str(value))


def _interval(interval) -> str:
    if not interval or interval.get("low") is None:
        return "—" if not interval else html.escape(interval.get("reason", "—"))
    text = f"[{interval['low']:.3g}, {interval['high']:.3g}]"
    if not interval.get("contains_estimate", True):
        text += f" (bootstrap bias {interval['bias']:+.3g})"
    return text + f"<br><small>{html.escape(interval.get('unit', ''))}</small>"


STATUS_CLASS = {"held": "held", "not held": "not", "inconclusive": "inconclusive", "premise not met": "premise"}


def _parts(rule) -> str:
    """A record's parts, one line each: value, interval, threshold (and its source), status."""
    lines = []
    for p in rule.get("parts", []) if isinstance(rule, dict) else []:
        side = ">" if p["held_if"] == "above" else "<"
        lines.append(f"{html.escape(p['name'])} = {_number(p['value'])} {_interval(p.get('interval'))}, held if "
                     f"{side} {_number(p['threshold'])} ({html.escape(p['threshold_source'])}): "
                     f"<b>{html.escape(p['status'])}</b>")
    return "<br>".join(lines)


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
            status = c.get("status", "held" if c.get("held") else "not held")
            scope = f"<br><small>{html.escape(str(c['scope']))}</small>" if c.get("scope") else ""
            rule = c.get("rule", {})
            rule_text = rule.get("decision", rule) if isinstance(rule, dict) else rule
            premise = rule.get("premise", "none") if isinstance(rule, dict) else "none"
            commit = str(c.get("rule_commit", ""))[:10]
            rows.append(
                f"<tr class='{STATUS_CLASS.get(status, 'not')}'><td>{html.escape(c.get('id', c.get('name', '')))}"
                f"{scope}</td><td>{html.escape(c['claim'])}</td>"
                f"<td>{html.escape(str(rule_text))}<br><small>{_parts(rule)}</small><br><small>premise: "
                f"{html.escape(str(premise))}; rule commit <code>{html.escape(commit)}</code>; replicates "
                f"{html.escape(str(c.get('replicates', '—')))}</small></td>"
                f"<td>{_number(c.get('value'))}</td><td>{_interval(c.get('interval'))}</td>"
                f"<td>{html.escape(status)}<br><small>{html.escape(_reading(c))}</small></td></tr>"
            )
        images = "".join(f"<img src='{html.escape(figure)}/{html.escape(png.name)}' alt='{html.escape(figure)}'>"
                         for png in sorted(path.parent.glob("*.png")))
        facts = [f"{k}: {html.escape(str(v))}" for k, v in (("scale", where), ("dataset", doc.get("dataset")),
                                                             ("command", doc.get("command"))) if v]
        sections.append(f"<h2 id='{html.escape(figure)}'>{html.escape(figure)}</h2>"
                        f"<p>{'; '.join(facts)}</p>{images}")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ccalens: the paper's findings, reproduced</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1500px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }}
tr.held td:last-child {{ background: #d8f0d8; }} tr.not td:last-child {{ background: #f6d6d6; }}
tr.premise td:last-child {{ background: #eeeeee; }} tr.inconclusive td:last-child {{ background: #f6ecc8; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
code {{ font-size: 0.9em; }}
</style></head><body>
<h1>Morcos, Raghu &amp; Bengio (2018), reproduced with ccalens</h1>
<p>Each claim is decided by the rule shown, committed before the run (the rule commit): held when every part's
interval (at the family-wise level) lies on its held side of its threshold, not held when one lies wholly on the
other side, inconclusive otherwise. A claim whose premise was not met was not tested. Under each status, its
reading: <i>exploratory</i> where the rule was changed after an outcome of the same design had been seen (the
record says what changed), <i>confirmatory</i> otherwise; <i>direction only</i> where the paper names a size
("largely", "much more") that the rule does not quantify. Figures: {", ".join(
        f"<a href='#{html.escape(p.parent.name)}'>{html.escape(p.parent.name)}</a>" for p in found) or "none yet"}.</p>
<table><tr><th>claim</th><th>in the paper's words</th><th>rule</th><th>value</th><th>interval</th>
<th>status</th></tr>
{"".join(rows)}
</table>
{"".join(sections)}
</body></html>
"""
    out = root / "index.html"
    atomic_write_text(out, page)
    return out


def _reading(c: dict) -> str:
    """How far a record's status can be read: exploratory (its rule changed after an outcome was
    seen) or confirmatory, and "direction only" where the paper names a size the rule does not test."""
    words = [c.get("analysis", "confirmatory")]
    if c.get("direction_only"):
        words.append("direction only")
    return ", ".join(words)


def claims_markdown(root) -> str:
    """Every claim record under ``root/<figure>/claims.json`` as one Markdown table (for the README)."""
    root = Path(root)
    found = sorted(root.glob("*/claims.json"),
                   key=lambda p: (ORDER.index(p.parent.name) if p.parent.name in ORDER else 99, p.parent.name))
    lines = ["| claim | scope | value | interval | status | reading |", "|---|---|---|---|---|---|"]
    for path in found:
        for c in json.loads(path.read_text()).get("claims", []):
            interval = c.get("interval") or {}
            span = (f"[{interval['low']:.3g}, {interval['high']:.3g}]" if interval.get("low") is not None else "—")
            value = c.get("value")
            value = f"{value:.3g}" if isinstance(value, float) else str(value)
            status = c["status"] if c["status"] != "held" else "**held**"
            lines.append(f"| `{c['id']}` | {c.get('scope') or ''} | {value} | {span} | {status} | {_reading(c)} |")
    return "\n".join(lines)


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
