"""REPORT.md as one self-contained HTML page (``report.html`` beside it): figures embedded as
base64 data URIs, a short inline stylesheet, and a small inline script that sorts every table by
the column whose header is clicked.

Only the markdown our reports use is understood: headings (``#`` to ``####``), paragraphs,
bullet lists (``- ``), pipe tables (with alignment colons), images, ``*italic*``, ``**bold**``,
```code```, fenced code blocks and links.  Standard library only.
"""

from __future__ import annotations

import base64
import errno
import html
import mimetypes
import re
from pathlib import Path

from bench.store import atomic_path

_HEADING = re.compile(r"^(#{1,4})\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^\s*-\s+(.*)$")
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+.-]*)\s*$")
_RULE_CELL = re.compile(r"^\s*(:?)-+(:?)\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE = re.compile(r"(`+)(.+?)\1")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_SLOT = re.compile("\x00(\\d+)\x00")
_SHORT = 16  # table cells up to this many characters do not wrap

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.4em 0 .5em; }
h1 { font-size: 1.8em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.4em; border-bottom: 1px solid #eee; padding-bottom: .15em; }
code { font: .9em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f4f4f4;
       padding: .1em .3em; border-radius: 3px; }
pre { background: #f6f6f6; padding: .8em 1em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: .9em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .3em .6em; vertical-align: top; }
thead th { background: #f3f5f8; text-align: left; cursor: pointer; user-select: none; }
td.short { white-space: nowrap; }
thead th:hover { background: #e6ebf2; }
thead th::after { content: "\\a0\\2195"; color: #aaa; font-size: .8em; }
thead th[aria-sort="ascending"]::after { content: "\\a0\\25B2"; color: #333; }
thead th[aria-sort="descending"]::after { content: "\\a0\\25BC"; color: #333; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.5em 0 .3em; }
img { max-width: 100%; height: auto; }
figure + p > em:only-child { color: #555; }
"""

# Sorts a table by the clicked header: numerically when every non-empty cell of the column reads
# as a number ("12", "0.5", "1e-3", "1,234", "inf", "62 %"), otherwise as text (numbers inside
# text in numeric order, so "3/20" comes before "17/20"); empty cells ("", "-", "nan") go last
# either way.  A second click on the same header reverses the order.
SCRIPT = r"""
(function () {
  "use strict";
  var MISSING = /^(|-|\u2013|\u2014|nan|n\/a|<na>|none)$/i;
  var NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
  function number(text) {
    var s = text.trim().replace(/[,\u00a0\u202f\s]/g, "").replace(/%$/, "").replace(/^\u2212/, "-");
    if (/^[+-]?(inf|infinity|\u221e)$/i.test(s)) return s.charAt(0) === "-" ? -Infinity : Infinity;
    return NUMBER.test(s) ? parseFloat(s) : NaN;
  }
  function sortBy(table, th) {
    var headers = Array.prototype.slice.call(th.parentNode.children);
    var column = headers.indexOf(th);
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var keyed = rows.map(function (row, index) {
      var cell = row.cells[column];
      var text = cell ? cell.textContent.trim() : "";
      return { row: row, index: index, text: text, missing: MISSING.test(text), value: number(text) };
    });
    var present = keyed.filter(function (k) { return !k.missing; });
    var numeric = present.length > 0 && present.every(function (k) { return !isNaN(k.value); });
    var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    var sign = ascending ? 1 : -1;
    keyed.sort(function (a, b) {
      if (a.missing !== b.missing) return a.missing ? 1 : -1;
      var order = 0;
      if (!a.missing) {
        if (numeric) order = a.value === b.value ? 0 : (a.value < b.value ? -1 : 1);
        else order = collator.compare(a.text, b.text);
      }
      return order !== 0 ? sign * order : a.index - b.index;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.tabIndex = 0;
      th.title = "Click to sort";
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th); }
      });
    });
  });
})();
"""


class _Inline:
    """Inline markup of one run of text; code spans, images and links are set aside in numbered
    slots first, so their contents are neither escaped twice nor marked up."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.slots: list[str] = []

    def _slot(self, fragment: str) -> str:
        self.slots.append(fragment)
        return f"\x00{len(self.slots) - 1}\x00"

    def __call__(self, text: str) -> str:
        text = text.replace("\x00", "")
        text = _CODE.sub(lambda m: self._slot(f"<code>{html.escape(m.group(2).strip())}</code>"), text)
        text = _ESCAPED.sub(lambda m: self._slot(html.escape(m.group(1))), text)
        text = _IMAGE.sub(lambda m: self._slot(self._image(m.group(1), m.group(2))), text)
        text = _LINK.sub(lambda m: self._slot(self._link(m.group(1), m.group(2))), text)
        return self._markup(text)

    def _markup(self, text: str) -> str:
        text = html.escape(text)
        text = _BOLD.sub(r"<strong>\1</strong>", text)
        text = _ITALIC.sub(r"<em>\1</em>", text)
        while _SLOT.search(text):  # a link's text may hold slots of its own
            text = _SLOT.sub(lambda m: self.slots[int(m.group(1))], text)
        return text

    def _link(self, label: str, url: str) -> str:
        if re.match(r"^\s*(javascript|vbscript|data):", url, re.IGNORECASE):
            url = "#"
        return f'<a href="{html.escape(url)}">{self._markup(label)}</a>'

    def _image(self, alt: str, src: str) -> str:
        if src.startswith("data:"):
            uri = src
        else:
            path = self.base / src
            if not path.is_file():
                raise FileNotFoundError(errno.ENOENT, f"image {src!r} of the report not found", str(path))
            mime = mimetypes.guess_type(path.name)[0] or "image/png"
            uri = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return f'<img src="{html.escape(uri)}" alt="{html.escape(alt)}">'


def _split_row(line: str) -> list[str]:
    """The cells of a pipe-table row; ``\\|`` is a literal pipe inside a cell."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _alignments(line: str) -> list[str] | None:
    """The alignment of each column from a separator row, or None if ``line`` is not one."""
    if "-" not in line or "|" not in line:
        return None
    cells = _split_row(line)
    matches = [_RULE_CELL.match(cell) for cell in cells]
    if not all(matches):
        return None
    names = {(True, True): "center", (False, True): "right", (True, False): "left", (False, False): ""}
    return [names[bool(m.group(1)), bool(m.group(2))] for m in matches]


def _table(header: list[str], aligns: list[str], body: list[list[str]], inline: _Inline) -> str:
    width = len(header)
    aligns = (aligns + [""] * width)[:width]

    def cell(tag: str, text: str, align: str) -> str:
        style = f' style="text-align:{align}"' if align else ""
        short = ' class="short"' if tag == "td" and len(text) <= _SHORT else ""  # "0.52-0.83" on one line
        return f"<{tag}{short}{style}>{inline(text)}</{tag}>"

    lines = ['<div class="table-wrap"><table class="sortable">', "<thead><tr>"]
    lines += [cell("th", text, align) for text, align in zip(header, aligns)]
    lines += ["</tr></thead>", "<tbody>"]
    for row in body:
        row = (row + [""] * width)[:width]
        lines.append("<tr>" + "".join(cell("td", text, align) for text, align in zip(row, aligns)) + "</tr>")
    lines += ["</tbody></table></div>"]
    return "\n".join(lines)


def _slug(text: str, seen: dict[str, int]) -> str:
    slug = re.sub(r"[^\w\s-]", "", text.lower()).strip()
    slug = re.sub(r"[\s-]+", "-", slug) or "section"
    seen[slug] = seen.get(slug, 0) + 1
    return slug if seen[slug] == 1 else f"{slug}-{seen[slug] - 1}"


def _blocks(text: str, inline: _Inline) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    paragraph: list[str] = []
    items: list[list[str]] = []
    slugs: dict[str, int] = {}

    def flush() -> None:
        if paragraph:
            content = inline(" ".join(part.strip() for part in paragraph))
            if re.fullmatch(r"\s*<img [^>]*>\s*", content):
                out.append(f"<figure>{content.strip()}</figure>")
            else:
                out.append(f"<p>{content}</p>")
            paragraph.clear()
        if items:
            out.append("<ul>\n" + "\n".join(f"<li>{inline(' '.join(item))}</li>" for item in items) + "\n</ul>")
            items.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker, language = fence.group(1), fence.group(2)
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker[:3]):
                code.append(lines[i])
                i += 1
            attr = f' class="language-{html.escape(language)}"' if language else ""
            out.append(f"<pre><code{attr}>{html.escape(chr(10).join(code))}</code></pre>")
            i += 1  # the closing fence (or the end of the text)
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, content = len(heading.group(1)), heading.group(2)
            out.append(f'<h{level} id="{_slug(content, slugs)}">{inline(content)}</h{level}>')
            i += 1
            continue
        aligns = _alignments(lines[i + 1]) if "|" in line and i + 1 < len(lines) else None
        if aligns is not None:
            flush()
            header = _split_row(line)
            i += 2
            body = []
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                body.append(_split_row(lines[i]))
                i += 1
            out.append(_table(header, aligns, body, inline))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            if paragraph:
                flush()
            items.append([bullet.group(1)])
        elif items and line[:1].isspace():
            items[-1].append(line.strip())  # a wrapped bullet
        else:
            if items:
                flush()
            paragraph.append(line)
        i += 1
    flush()
    return out


def markdown_to_html(text: str, base: Path, title: str) -> str:
    """One self-contained HTML page from report markdown.

    Parameters
    ----------
    text : str
        The markdown: headings ``#`` to ``####``, paragraphs, ``- `` bullet lists, pipe tables,
        ``![alt](path)`` images, ``*italic*``, ``**bold**``, ```code```, fenced code blocks and
        ``[text](url)`` links.
    base : Path
        The folder image paths are relative to (the folder of REPORT.md).
    title : str
        The page's ``<title>``.

    Returns
    -------
    str
        The page, every image embedded as a base64 ``data:`` URI, every table sortable by a click
        on its header.

    Raises
    ------
    FileNotFoundError
        An image the markdown refers to is not a file under ``base``.
    """
    body = "\n".join(_blocks(text, _Inline(Path(base))))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def write_html(report_md: Path) -> Path:
    """Write ``report.html`` beside ``report_md`` (atomically), titled by its first ``# `` heading.

    Returns
    -------
    Path
        Path of report.html.
    """
    report_md = Path(report_md)
    text = report_md.read_text(encoding="utf-8")
    first = re.search(r"^#\s+(.+?)\s*$", text, re.MULTILINE)
    title = first.group(1) if first else report_md.parent.name
    page = markdown_to_html(text, report_md.parent, title)
    target = report_md.with_name("report.html")
    with atomic_path(target) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return target
