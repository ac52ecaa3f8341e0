"""Render an :class:`~calibration.report_model.EvaluationReport` as Markdown and as one HTML page.

:func:`write_report` writes, under ``out_dir``::

    report.md      Markdown, figures linked from images/
    report.html    one self-contained page: figures inlined as base64 data URIs, inline CSS,
                   no external assets, every text HTML-escaped
    report.json    the EvaluationReport itself (``model_dump_json``)
    images/*.png   per detector a reliability diagram and a score histogram

The content (section and row order, number formatting, warnings) is decided once in
:mod:`calibration.report_content`; the figures come from :mod:`calibration.report_plots`.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import NamedTuple

from calibration.report_content import (
    MISSING,
    Bullets,
    Cell,
    Estimate,
    Figure,
    Heading,
    Highlight,
    Link,
    Notes,
    Paragraph,
    Table,
    Untrusted,
    report_blocks,
)
from calibration.report_model import EvaluationReport
from calibration.report_plots import render_figures

__all__ = ["ReportPaths", "render_html", "render_markdown", "write_report"]

# Wide tables fit the page: an interval wraps under its value (and after its comma if it must),
# long names break between words or, failing that, inside one; a table that still cannot fit
# scrolls in its own box, never the page.
_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:90rem;padding:0 1rem;
color:#222}div.table{max-width:100%;overflow-x:auto;margin:.5rem 0 1.5rem}
table{border-collapse:collapse;font-size:.8rem}th,td{border:1px solid #ccc;padding:.2rem .35rem;
text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num .ci{display:inline-block;color:#666;font-size:.72rem}
p.reading{max-width:60rem;line-height:1.45}
.notes{background:#fff4d6;border-left:5px solid #e0a000;padding:.5rem 1rem;margin:1rem 0}
figure{display:inline-block;margin:0 1rem 1rem 0}figcaption{font-size:.8rem;color:#555}
p.caption{margin:1rem 0 .25rem;font-size:.9rem}
p.tokens{max-width:60rem;line-height:1.6;white-space:pre-wrap;border-left:3px solid #ddd;
padding-left:.75rem;margin-top:0}span.risky{border-bottom:2px solid #b00000}"""


class ReportPaths(NamedTuple):
    """Files written by :func:`write_report`."""

    markdown: Path
    html: Path
    images: tuple[Path, ...]
    json: Path


# --- Markdown -----------------------------------------------------------------------------------


def _md_text(text: str) -> str:
    """Neutralise raw HTML (a Markdown viewer would render it) and keep a block on one line."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        url = cell.url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        return f"[{_md_cell(cell.text)}]({url})"
    if isinstance(cell, Untrusted):  # text from data or a bundle: no link, image or emphasis
        return _md_inline(cell)
    return _md_text(str(cell)).replace("\\", "\\\\").replace("|", "\\|")


def _md_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |"]
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#+!|~])")


def _md_inline(text: str) -> str:
    """Response text as literal Markdown: HTML neutralised, Markdown punctuation escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _md_text(text))


def _md_highlight(block: Highlight) -> str:
    """The response as a quote, each risky run in bold brackets with its peak risk."""
    out = []
    for text, risk in block.runs:
        if risk is None:
            out.append(_md_inline(text))
            continue
        core = text.strip()
        if not core:  # a run of spaces marks nothing readable
            out.append(_md_text(text))
            continue
        lead, tail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        out.append(f"{_md_text(lead)}**⟦{_md_inline(core)}⟧** ({risk:.2f}){_md_text(tail)}")
    return f"**{_md_inline(block.caption)}**\n\n> {''.join(out)}"


def render_markdown(report: EvaluationReport, image_names: Mapping[str, str]) -> str:
    """The report as Markdown.

    Args:
        report: The report.
        image_names: Figure file name (as :func:`~calibration.report_plots.figure_names` gives
            it) to the path the Markdown links, e.g. ``"images/fabrication-reliability.png"``.
            Figures missing from the mapping are left out.
    """
    out = [f"# {_md_text(report.title)}"]
    for block in report_blocks(report):
        match block:
            case Heading(text, level):
                out.append(f"{'#' * level} {_md_text(text)}")
            case Notes(items):
                out.append("\n>\n".join(f"> **Note:** {_md_text(item)}" for item in items))
            case Paragraph(text):
                out.append(_md_text(text))
            case Bullets(items):
                out.append("\n".join(f"- {_md_text(item)}" for item in items))
            case Table():
                out.append(_md_table(block))
            case Figure(name, caption) if name in image_names:
                out.append(f"![{_md_cell(caption)}]({image_names[name]})")
            case Highlight():
                out.append(_md_highlight(block))
    return "\n\n".join(out) + "\n"


# --- HTML ---------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


_BREAK_AFTER = re.compile(r"([_@/+=])")


def _esc_breakable(text: str) -> str:
    """Escaped text with a line-break opportunity after ``_ @ / + =``: identifiers such as
    ``fabrication_resid_post@20`` or ``sae+grounding`` wrap at their joints, not mid-word."""
    return _BREAK_AFTER.sub(r"\1<wbr>", _esc(text))


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<td><a href="{_esc(cell.url)}" rel="noopener">{_esc(cell.text)}</a></td>'
    if isinstance(cell, Estimate):
        if cell.interval is None:
            return f'<td class="num">{_esc(cell.value)}</td>'
        # the interval may wrap under the value (never inside itself): wide tables still fit
        interval = f'<span class="ci">{_esc(cell.interval)}</span>'
        return f'<td class="num">{_esc(cell.value)} {interval}</td>'
    numeric = cell[:1].isdigit() or cell[:1] in "+-" or cell == MISSING
    return f'<td class="num">{_esc(cell)}</td>' if numeric else f"<td>{_esc_breakable(cell)}</td>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_esc_breakable(h)}</th>" for h in table.headers)
    rows = ("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in table.rows)
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="table">{table_html}</div>'  # scrolls alone if it cannot fit


def _html_highlight(block: Highlight) -> str:
    """The response with every token shaded by its risk (its value on hover) and the tokens at
    or above the threshold underlined."""
    pieces = []
    for text, risk in block.tokens:
        if risk is None:
            pieces.append(_esc(text))
            continue
        alpha = min(max(risk, 0.0), 1.0) * 0.65
        risky = ' class="risky"' if risk >= block.threshold else ""
        pieces.append(
            f'<span{risky} style="background:rgba(214,39,40,{alpha:.2f})" '
            f'title="risk {risk:.3f}">{_esc(text)}</span>'
        )
    caption = f'<p class="caption"><strong>{_esc(block.caption)}</strong></p>'
    return f'{caption}<p class="tokens">{"".join(pieces)}</p>'


def render_html(report: EvaluationReport, images: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page; every text is escaped.

    Args:
        report: The report.
        images: Figure file name to PNG bytes, as
            :func:`~calibration.report_plots.render_figures` returns them; inlined as data URIs.
            Figures missing from the mapping are left out.
    """
    out = [f"<h1>{_esc(report.title)}</h1>"]
    for block in report_blocks(report):
        match block:
            case Heading(text, level):
                out.append(f"<h{level}>{_esc(text)}</h{level}>")
            case Notes(items):
                lis = "".join(f"<li>{_esc(item)}</li>" for item in items)
                out.append(f'<div class="notes"><strong>Notes</strong><ul>{lis}</ul></div>')
            case Paragraph(text):
                out.append(f'<p class="reading">{_esc(text)}</p>')
            case Bullets(items):
                out.append("<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in items) + "</ul>")
            case Table():
                out.append(_html_table(block))
            case Figure(name, caption) if name in images:
                data = base64.b64encode(images[name]).decode("ascii")
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
                    f"<figcaption>{_esc(caption)}</figcaption></figure>"
                )
            case Highlight():
                out.append(_html_highlight(block))
    body = "\n".join(out)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(report.title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(report: EvaluationReport, out_dir: str | PathLike[str]) -> ReportPaths:
    """Write ``report.md``, ``report.html``, ``report.json`` and ``images/*.png`` under ``out_dir``.

    Existing files of the same names are overwritten.

    Returns:
        The paths written; ``images`` in evaluation order (reliability, then histogram).
    """
    root = Path(out_dir)
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(report)
    images = []
    for name, data in figures.items():
        path = image_dir / name
        path.write_bytes(data)
        images.append(path)
    links = {name: f"images/{name}" for name in figures}
    markdown = root / "report.md"
    markdown.write_text(render_markdown(report, links), encoding="utf-8")
    page = root / "report.html"
    page.write_text(render_html(report, figures), encoding="utf-8")
    json_path = root / "report.json"
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return ReportPaths(markdown, page, tuple(images), json_path)
