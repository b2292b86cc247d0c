"""One document, two renderings: ``report.html`` and ``report.pdf`` from the same list of blocks.

The report (training/report_doc.py) is built as a list of plain blocks (headings,
paragraphs, bullet lists, tables, code lines, figure rows, page breaks); this module
writes that list as a self-contained HTML page and as a PDF with fpdf2, so both
read as the same document: same sections, same tables, same figures, same order.

fpdf2 is pure Python (no system libraries); its built-in fonts only cover latin-1,
so the PDF embeds the DejaVu fonts that matplotlib ships (matplotlib is already a
dependency of the ``train`` extra).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

STATUS_COLOURS = {"GO": (0, 120, 60), "NO-GO": (190, 30, 30)}
STATUS_HTML = {"GO": "go", "NO-GO": "nogo"}


@dataclass
class Heading:
    text: str
    level: int = 1


@dataclass
class Para:
    text: str  # **bold** spans allowed
    small: bool = False


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    widths: list[float] | None = None  # relative column widths (PDF); None = equal
    caption: str = ""
    font_size: float = 8.0
    align: list[str] | None = None  # per column "L" / "R" / "C"


@dataclass
class Code:
    lines: list[str]


@dataclass
class Figures:
    paths: list[Path]
    captions: list[str]
    per_row: int = 2


@dataclass
class PageBreak:
    pass


@dataclass
class Document:
    title: str
    subtitle: str = ""
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> "Document":
        self.blocks.extend(blocks)
        return self


# ----------------------------------------------------------------------------- HTML

_BOLD = re.compile(r"\*\*(.+?)\*\*")

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10.5pt; color: #222;
       max-width: 1000px; margin: 2em auto; padding: 0 1.5em; line-height: 1.4; }
h1 { font-size: 20pt; margin-bottom: 0.1em; }
h2 { font-size: 15pt; border-bottom: 1px solid #999; padding-bottom: 0.15em; margin-top: 1.6em; }
h3 { font-size: 12pt; margin-top: 1.2em; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em 0; font-size: 9pt; width: 100%; }
th, td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #e8edf3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.go { color: #00783c; font-weight: bold; }
td.nogo { color: #be1e1e; font-weight: bold; }
caption { caption-side: bottom; font-size: 8.5pt; color: #555; text-align: left; padding-top: 3px; }
pre { background: #f5f5f5; padding: 0.6em; font-size: 8.5pt; white-space: pre-wrap; word-break: break-all; }
.figrow { display: flex; gap: 1em; flex-wrap: wrap; margin: 0.6em 0; }
figure { margin: 0; flex: 1 1 0; min-width: 280px; }
figure img { width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 8.5pt; color: #555; }
p.small { font-size: 9pt; color: #444; }
@media print { .pagebreak { page-break-after: always; } body { max-width: none; } }
"""


def _inline(text: str) -> str:
    return _BOLD.sub(r"<b>\1</b>", html.escape(text))


def _plain(text: str) -> str:
    return _BOLD.sub(r"\1", text)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+(e[-+]?\d+)?( ?[%x]| ms| MB)?( / [-+]?[\d.]+)?", text.strip()))


def to_html(doc: Document, out_dir: Path) -> str:
    """The document as one HTML page; figure paths are written relative to ``out_dir``."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(doc.title)}</h1>"]
    if doc.subtitle:
        parts.append(f'<p class="subtitle">{html.escape(doc.subtitle)}</p>')
    for b in doc.blocks:
        if isinstance(b, Heading):
            lvl = min(b.level + 1, 4)
            anchor = re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-")
            parts.append(f'<h{lvl} id="{anchor}">{html.escape(b.text)}</h{lvl}>')
        elif isinstance(b, Para):
            parts.append(f'<p{" class=small" if b.small else ""}>{_inline(b.text)}</p>')
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            rows = ["<table>"]
            if b.caption:
                rows.append(f"<caption>{_inline(b.caption)}</caption>")
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows.append(f"<thead><tr>{head}</tr></thead><tbody>")
            for r in b.rows:
                cells = []
                for c in r:
                    c = str(c)
                    cls = STATUS_HTML.get(c) or ("num" if _numeric(c) else "")
                    cells.append(f'<td{f" class={cls}" if cls else ""}>{_inline(c)}</td>')
                rows.append("<tr>" + "".join(cells) + "</tr>")
            rows.append("</tbody></table>")
            parts.append("".join(rows))
        elif isinstance(b, Code):
            parts.append("<pre>" + html.escape("\n".join(b.lines)) + "</pre>")
        elif isinstance(b, Figures):
            figs = []
            for p, cap in zip(b.paths, b.captions):
                rel = Path(p).resolve().relative_to(out_dir.resolve()) if Path(p).resolve().is_relative_to(
                    out_dir.resolve()) else Path(p)
                figs.append(f'<figure><img src="{html.escape(rel.as_posix())}" alt="{html.escape(cap)}">'
                            f"<figcaption>{_inline(cap)}</figcaption></figure>")
            for i in range(0, len(figs), b.per_row):
                parts.append('<div class="figrow">' + "".join(figs[i:i + b.per_row]) + "</div>")
        elif isinstance(b, PageBreak):
            parts.append('<div class="pagebreak"></div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- PDF

def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def to_pdf(doc: Document, path: Path) -> Path:
    """The document as an A4 PDF (fpdf2, DejaVu fonts), with bookmarks per heading and page numbers."""
    import logging

    from fpdf import FPDF
    from fpdf.fonts import FontFace

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting logs every table at INFO
    fonts = _font_dir()
    title = doc.title

    class _PDF(FPDF):
        def footer(self) -> None:  # noqa: D401 - fpdf2 hook
            self.set_y(-11)
            self.set_font("DejaVu", "", 7.5)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, f"{title}  ·  page {self.page_no()} of {{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = _PDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(title)
    pdf.set_creator("fer-train report")
    pdf.set_margins(16, 15, 16)
    pdf.set_auto_page_break(True, margin=16)
    for style, name in (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf"), ("I", "DejaVuSans-Oblique.ttf"),
                        ("BI", "DejaVuSans-BoldOblique.ttf")):
        pdf.add_font("DejaVu", style, str(fonts / name))
    pdf.add_font("DejaVuMono", "", str(fonts / "DejaVuSansMono.ttf"))
    pdf.alias_nb_pages()
    pdf.add_page()
    epw = pdf.epw

    def room(mm: float) -> None:
        if pdf.get_y() + mm > pdf.page_break_trigger:
            pdf.add_page()

    def rich(text: str, size: float, h: float) -> None:
        """Flowing text with **bold** spans."""
        for k, seg in enumerate(re.split(r"\*\*", text)):
            if seg:
                pdf.set_font("DejaVu", "B" if k % 2 else "", size)
                pdf.write(h, seg)
        pdf.ln(h)

    pdf.set_font("DejaVu", "B", 19)
    pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT", align="L")
    if doc.subtitle:
        pdf.set_font("DejaVu", "", 9.5)
        pdf.set_text_color(80, 80, 80)
        pdf.multi_cell(0, 5, doc.subtitle, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2)

    for b in doc.blocks:
        if isinstance(b, Heading):
            size = {1: 14.5, 2: 11.5}.get(b.level, 10.5)
            room(28)
            pdf.ln(3 if b.level == 1 else 1.5)
            pdf.start_section(b.text, level=b.level - 1)
            pdf.set_font("DejaVu", "B", size)
            pdf.multi_cell(0, size * 0.5, b.text, new_x="LMARGIN", new_y="NEXT", align="L")
            if b.level == 1:
                pdf.set_draw_color(150, 150, 150)
                pdf.line(pdf.l_margin, pdf.get_y() + 0.5, pdf.l_margin + epw, pdf.get_y() + 0.5)
                pdf.set_draw_color(0, 0, 0)
            pdf.ln(2)
        elif isinstance(b, Para):
            if b.small:
                pdf.set_text_color(70, 70, 70)
            rich(b.text, 8.0 if b.small else 9.2, 4.0 if b.small else 4.6)
            pdf.set_text_color(0, 0, 0)
            pdf.ln(1.6)
        elif isinstance(b, Bullets):
            indent = 5.0
            for item in b.items:
                room(6)
                pdf.set_font("DejaVu", "", 9.2)
                x0 = pdf.l_margin
                pdf.set_x(x0 + 1)
                pdf.cell(indent - 1, 4.6, "•")
                pdf.set_left_margin(x0 + indent)
                rich(item, 9.2, 4.6)
                pdf.set_left_margin(x0)
                pdf.set_x(x0)
                pdf.ln(0.6)
            pdf.ln(1.2)
        elif isinstance(b, Table):
            _pdf_table(pdf, b, FontFace)
        elif isinstance(b, Code):
            pdf.set_font("DejaVuMono", "", 6.8)
            pdf.set_fill_color(244, 244, 244)
            for line in b.lines:
                room(4)
                pdf.multi_cell(0, 3.3, line, fill=True, new_x="LMARGIN", new_y="NEXT", align="L")
                pdf.ln(0.5)
            pdf.ln(1.5)
        elif isinstance(b, Figures):
            _pdf_figures(pdf, b)
        elif isinstance(b, PageBreak):
            pdf.add_page()
    path = Path(path)
    pdf.output(str(path))
    return path


def _pdf_table(pdf: Any, b: Table, FontFace: Any) -> None:
    pdf.set_font("DejaVu", "", b.font_size)
    n = len(b.header)
    widths = b.widths or [1.0] * n
    total = float(sum(widths))
    col_widths = [pdf.epw * w / total for w in widths]
    align = b.align or ["L"] * n
    line_h = b.font_size * 0.47
    estimate = (len(b.rows) + 1) * (line_h + 1.8) + (6 if b.caption else 0)  # one line per row, plus the caption
    if pdf.get_y() + (estimate if estimate < 70 else 3 * line_h + 6) > pdf.page_break_trigger:
        pdf.add_page()  # a short table (with its caption) stays on one page; a long one starts with a few rows
    heading = FontFace(emphasis="BOLD", fill_color=(232, 237, 243))
    with pdf.table(col_widths=col_widths, width=pdf.epw, line_height=line_h, headings_style=heading,
                   text_align=tuple(align), borders_layout="SINGLE_TOP_LINE", cell_fill_color=(248, 248, 248),
                   cell_fill_mode="ROWS", padding=(0.8, 1.2), first_row_as_headings=True) as table:
        row = table.row()
        for h in b.header:
            row.cell(h)
        for r in b.rows:
            row = table.row()
            for c in r:
                c = _plain(str(c))
                colour = STATUS_COLOURS.get(c)
                row.cell(c, style=FontFace(emphasis="BOLD", color=colour) if colour else None)
    if b.caption:
        pdf.ln(0.8)
        pdf.set_text_color(80, 80, 80)
        pdf.set_font("DejaVu", "I", 7.5)
        pdf.multi_cell(0, 3.6, _plain(b.caption), new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2.5)


def _pdf_figures(pdf: Any, b: Figures) -> None:
    from PIL import Image

    gap = 4.0
    w = (pdf.epw - gap * (b.per_row - 1)) / b.per_row
    items = list(zip(b.paths, b.captions))
    for i in range(0, len(items), b.per_row):
        chunk = items[i:i + b.per_row]
        heights = []
        for p, _ in chunk:
            with Image.open(p) as im:
                heights.append(w * im.height / im.width)
        h = max(heights)
        cap_h = 8.0
        if pdf.get_y() + h + cap_h > pdf.page_break_trigger:
            pdf.add_page()
        y0 = pdf.get_y()
        for k, (p, cap) in enumerate(chunk):
            x = pdf.l_margin + k * (w + gap)
            pdf.image(str(p), x=x, y=y0, w=w)
        pdf.set_font("DejaVu", "I", 7.3)
        pdf.set_text_color(80, 80, 80)
        y_cap = y0 + h + 1
        bottom = y_cap
        for k, (p, cap) in enumerate(chunk):
            pdf.set_xy(pdf.l_margin + k * (w + gap), y_cap)
            pdf.multi_cell(w, 3.4, _plain(cap), new_x="LEFT", new_y="NEXT", align="L")
            bottom = max(bottom, pdf.get_y())
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, bottom + 3)


def write_document(doc: Document, out_dir: Path) -> tuple[Path, Path]:
    """report.html and report.pdf in ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    html_path.write_text(to_html(doc, out_dir), encoding="utf-8")
    pdf_path = to_pdf(doc, out_dir / "report.pdf")
    return html_path, pdf_path


def as_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[list[str]]:
    return [[str(r.get(c, "")) for c in columns] for r in rows]
