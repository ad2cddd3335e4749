"""Tests of bench.report.html: REPORT.md as one self-contained report.html (the converter on
hand-written markdown, and real reports rendered by headless Chromium)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import bench
from bench.report.html import markdown_to_html, write_html


def png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG of the given size (red), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def body(page: str) -> str:
    """The page between <body> and the sorting script."""
    return page.split("<body>", 1)[1].split("<script>", 1)[0]


# ---------------------------------------------------------------------------------------------
# The converter


def test_a_page_with_title_style_and_script(tmp_path):
    page = markdown_to_html("# Hello\n\ntext", tmp_path, title="A & <B>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>A &amp; &lt;B&gt;</title>" in page
    assert '<meta charset="utf-8">' in page and "<style>" in page and "<script>" in page
    assert "max-width: 100%" in page  # figures fit the page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from outside


def test_headings_paragraphs_and_lists(tmp_path):
    text = "# One\n\n## Two\n\n### Three\n\n#### Four\n\nfirst line\nsecond line\n\n- a\n- **b**: c\n\nafter"
    html = body(markdown_to_html(text, tmp_path, "t"))
    assert '<h1 id="one">One</h1>' in html and '<h2 id="two">Two</h2>' in html
    assert '<h3 id="three">Three</h3>' in html and '<h4 id="four">Four</h4>' in html
    assert "<p>first line second line</p>" in html
    assert "<ul>\n<li>a</li>\n<li><strong>b</strong>: c</li>\n</ul>" in html
    assert "<p>after</p>" in html


def test_inline_markup(tmp_path):
    text = "*it* and **bold**, `x < y`, [the docs](https://example.org/a?b=1&c=2) and 2 * 3 * 4"
    html = body(markdown_to_html(text, tmp_path, "t"))
    assert "<em>it</em>" in html and "<strong>bold</strong>" in html
    assert "<code>x &lt; y</code>" in html
    assert '<a href="https://example.org/a?b=1&amp;c=2">the docs</a>' in html
    assert "2 * 3 * 4" in html  # a lone star with spaces around is arithmetic, not emphasis


def test_text_is_escaped_before_markup(tmp_path):
    text = "a < b & c > d, <script>alert(1)</script> **<b>**, `<i>&amp;</i>`"
    html = body(markdown_to_html(text, tmp_path, "t"))
    assert "a &lt; b &amp; c &gt; d" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<strong>&lt;b&gt;</strong>" in html
    assert "<code>&lt;i&gt;&amp;amp;&lt;/i&gt;</code>" in html  # code is escaped once, literally


def test_fenced_code_is_kept_verbatim(tmp_path):
    text = "before\n\n```python\nx = a < b  # **not bold**\n\n- not a list\n```\n\nafter"
    html = body(markdown_to_html(text, tmp_path, "t"))
    assert '<pre><code class="language-python">x = a &lt; b  # **not bold**\n\n- not a list</code></pre>' in html
    assert "<p>before</p>" in html and "<p>after</p>" in html and "<li>" not in html


def test_tables_cells_alignment_and_escaping(tmp_path):
    text = (
        "| optimizer | success | ERT |\n"
        "|:---|:---:|---:|\n"
        "| rprop(variant=irprop-) | 4/6 (67%) | 594 |\n"
        "| a \\| b & <c> | `x\\|y` | inf |\n"
        "| short |\n"
        "\n"
        "after"
    )
    html = body(markdown_to_html(text, tmp_path, "t"))
    assert '<table class="sortable">' in html
    assert '<th style="text-align:left">optimizer</th>' in html
    assert '<th style="text-align:center">success</th>' in html
    assert '<th style="text-align:right">ERT</th>' in html
    assert '<td style="text-align:left">rprop(variant=irprop-)</td>' in html
    assert '<td class="short" style="text-align:right">594</td>' in html
    assert '<td class="short" style="text-align:left">a | b &amp; &lt;c&gt;</td>' in html  # \| is a pipe
    assert "<code>x|y</code>" in html
    rows = re.findall(r"<tr>.*?</tr>", html.split("<tbody>")[1], re.DOTALL)
    assert len(rows) == 3 and rows[2].count("<td") == 3  # a short row is padded to the header's width
    assert html.count("<th ") == 3 and "<p>after</p>" in html


def test_a_pipe_in_a_paragraph_is_not_a_table(tmp_path):
    html = body(markdown_to_html("a | b\nc | d", tmp_path, "t"))
    assert "<table" not in html and "<p>a | b c | d</p>" in html


def test_images_become_data_uris_of_the_file(tmp_path):
    picture = png()
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "one.png").write_bytes(picture)
    html = body(markdown_to_html('![A "plot" & <more>](figures/one.png)\n\n*caption*', tmp_path, "t"))
    match = re.search(r'<figure><img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"></figure>', html)
    assert match, html
    assert base64.b64decode(match.group(1)) == picture
    assert match.group(2) == "A &quot;plot&quot; &amp; &lt;more&gt;"
    assert "<p><em>caption</em></p>" in html
    assert "figures/one.png" not in html  # nothing left to fetch


def test_a_missing_image_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("figures/missing.png")):
        markdown_to_html("text\n\n![gone](figures/missing.png)", tmp_path, "t")


def test_write_html_beside_the_report(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(png())
    report = tmp_path / "REPORT.md"
    report.write_text("intro\n\n# bench report: x & y\n\n![a](figures/a.png)\n\n# later\n", encoding="utf-8")
    written = write_html(report)
    assert written == tmp_path / "report.html"
    page = written.read_text(encoding="utf-8")
    assert "<title>bench report: x &amp; y</title>" in page and "data:image/png;base64," in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md", "figures", "report.html"]  # no temporary


def test_write_html_leaves_no_page_when_an_image_is_missing(tmp_path):
    report = tmp_path / "REPORT.md"
    report.write_text("# r\n\n![a](figures/a.png)\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        write_html(report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md"]


# ---------------------------------------------------------------------------------------------
# In a browser

# Inserted right after <head>: records script errors, and after load counts the images that
# loaded, then clicks the headers it is given and records the first column after each click.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var probe = document.createElement("div");
  probe.id = "probe";
  probe.setAttribute("data-images-ok", ok + "/" + images.length);
  probe.setAttribute("data-widths", JSON.stringify(images.map(function (i) { return i.naturalWidth; })));
  probe.setAttribute("data-tables", String(document.querySelectorAll("table.sortable").length));
  probe.setAttribute("data-h1", document.querySelector("h1") ? document.querySelector("h1").textContent : "");
  var clicks = CLICKS, orders = [];
  clicks.forEach(function (click) {
    var table = document.querySelectorAll("table")[click[0]];
    var th = Array.prototype.filter.call(table.tHead.rows[0].cells, function (c) {
      return c.textContent.trim() === click[1];
    })[0];
    th.click();
    orders.push(Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return [r.cells[0].textContent.trim(), r.cells[th.cellIndex].textContent.trim()];
    }));
  });
  probe.setAttribute("data-orders", JSON.stringify(orders));
  probe.setAttribute("data-errors", JSON.stringify(window.__errors));
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("chromium not installed: apt-get install chromium")


class _Probe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == "probe":
            self.attrs = {name: value or "" for name, value in attrs}


def render(chromium: str, page: Path, clicks: list[tuple[int, str]], tmp_path: Path) -> dict:
    """Open a copy of ``page`` with the probe in headless Chromium; the probe's findings."""
    probed = page.with_name("probed.html")
    source = page.read_text(encoding="utf-8")
    assert source.count("<head>") == 1
    probed.write_text(source.replace("<head>", "<head>\n" + PROBE.replace("CLICKS", json.dumps(clicks))), "utf-8")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probed.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Probe()
    parser.feed(done.stdout)
    assert parser.attrs is not None, f"the probe did not run; stderr: {done.stderr[-2000:]}"
    found = parser.attrs
    assert json.loads(found["data-errors"]) == []
    return {**found, "orders": json.loads(found["data-orders"])}


SORTABLE = """# Sorting

| name | value | share |
|---|---:|---:|
| b | 1,234 | 62 % |
| a | 1e-3 | 5 % |
| C | inf | - |
| d | 0.5 | 100 % |
| e | - | 7 % |
| f | -2 | 0 % |
| g | 12 | 8 % |
| h | 2.5E+01 | 61.5% |
"""


def test_tables_sort_numerically_and_as_text_in_a_browser(chromium, tmp_path):
    report = tmp_path / "REPORT.md"
    report.write_text(SORTABLE, encoding="utf-8")
    found = render(chromium, write_html(report), [(0, "value")] * 2 + [(0, "share")] * 2 + [(0, "name")] * 2, tmp_path)
    by_value, by_value_reversed, by_share, by_share_reversed, by_name, by_name_reversed = (
        [row[0] for row in order] for order in found["orders"]
    )
    # numbers: "-2" < "1e-3" < "0.5" < "12" < "2.5E+01" < "1,234" < "inf"; the empty "-" last both ways
    assert by_value == ["f", "a", "d", "g", "h", "b", "C", "e"]
    assert by_value_reversed == ["C", "b", "h", "g", "d", "a", "f", "e"]
    assert by_share == ["f", "a", "e", "g", "h", "b", "d", "C"]  # "61.5%" < "62 %" < "100 %": not as text
    assert by_share_reversed == ["d", "b", "h", "g", "e", "a", "f", "C"]
    assert by_name == ["a", "b", "C", "d", "e", "f", "g", "h"]  # text, case-insensitive
    assert by_name_reversed == ["h", "g", "f", "e", "d", "C", "b", "a"]


def test_a_real_report_renders_with_every_image_in_a_browser(chromium, tiny, tmp_path):
    res = bench.run(tiny, out=tmp_path / "results", executor="serial", workers=1, progress=False)
    report = res.path / "REPORT.md"
    page = res.path / "report.html"
    assert report.is_file() and page.is_file()  # write_report writes both
    text = report.read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) == len(list((res.path / "figures").glob("*.png"))) >= 4
    html = page.read_text(encoding="utf-8")
    assert "figures/" not in html.split("<body>", 1)[1]  # every figure embedded, none linked
    tables = text.count("\n|---") + text.count("\n|:--")
    found = render(chromium, page, [(1, "median final loss")] * 2, tmp_path)
    assert found["data-images-ok"] == f"{len(figures)}/{len(figures)}"
    assert min(json.loads(found["data-widths"])) > 300  # real figures, drawn at their size
    assert int(found["data-tables"]) == tables >= 3
    assert found["data-h1"] == "bench report: tiny"
    ascending, descending = ([float(loss) for _, loss in order] for order in found["orders"])
    assert len(ascending) == len(res.summary()) == 2
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
