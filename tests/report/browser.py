"""Headless Chromium for the page tests: a page's DOM after load, and its layout measured at a window size.

The pages carry no script (they are self-contained and inert), so a measuring script is
appended to a copy of the page; it writes what it measured into `<body data-check>`, which
`--dump-dom` prints after the load event.
"""

import html
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

BROWSER_S = 60.0

# Per text of the timeline (and of the history page's plots): its full text and its box in the
# picture's own units; per picture: its plot's left edge (the label column's end) and width;
# the page: whether it is wider than the window.
_MEASURE = """<script>
(() => {
  const out = {window: innerWidth, page_width: document.documentElement.scrollWidth, pictures: []};
  for (const svg of document.querySelectorAll('svg.picture')) {
    const box = svg.getBoundingClientRect();
    const labels = [...svg.querySelectorAll('text.label')].map(t => {
      const b = t.getBBox();
      return {text: t.textContent, x: b.x, right: b.x + b.width};
    });
    out.pictures.push({id: svg.id, plot_x0: Number(svg.dataset.plotX0 || 0), width: svg.viewBox.baseVal.width,
      left: box.left, right: box.right, labels});
  }
  out.cells = [...document.querySelectorAll('td, th, h3, a.run')].map(c => {
    const b = c.getBoundingClientRect();
    return {text: c.textContent, right: b.right, overflow: c.scrollWidth > c.clientWidth + 1};
  });
  document.body.setAttribute('data-check', JSON.stringify(out));
})();
</script>"""


def chromium(args: list[str], profile: Path) -> "subprocess.CompletedProcess[str]":
    browser = shutil.which("chromium")
    assert browser is not None, "chromium is missing: apt-get install -y chromium (see README)"
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    argv += ["--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args]
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = popen.communicate(timeout=BROWSER_S)
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.communicate()
    return subprocess.CompletedProcess(argv, popen.returncode, stdout, stderr)


def measure(page: Path, width: int, work: Path) -> dict[str, Any]:
    """The page's layout in a `width`-pixel frame, as `_MEASURE` sees it.

    Headless Chromium's window is at least 500 px wide, so the page is measured in an iframe
    of the width asked for (a phone's 390 px included), inside a wider window.
    """
    copy = work / f"measured-{width}-{page.name}"
    copy.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))
    frame = work / f"frame-{width}.html"
    frame.write_text(
        f'<!DOCTYPE html><html><body style="margin:0" onload="document.body.setAttribute(\'data-check\','
        f" document.getElementById('f').contentDocument.body.getAttribute('data-check'))\">"
        f'<iframe id="f" src="{copy.name}" style="border:0;width:{width}px;height:900px"></iframe></body></html>'
    )
    argv = [
        f"--window-size={width + 100},1000",
        "--allow-file-access-from-files",
        "--dump-dom",
        frame.resolve().as_uri(),
    ]
    dom = chromium(argv, work / f"profile-{width}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('data-check="') + len('data-check="')
    raw = dom.stdout[start : dom.stdout.index('"', start)]
    checked: dict[str, Any] = json.loads(html.unescape(raw))
    return checked


def assert_nothing_cut(layout: dict[str, Any], names: list[str]) -> None:
    """Every name is shown whole in some label or cell; no label runs into the plot or off the
    picture's left; no table cell hides text; the page itself is never wider than the window."""
    assert layout["page_width"] <= layout["window"], f"page {layout['page_width']} px wider than {layout['window']}"
    texts = [label["text"] for p in layout["pictures"] for label in p["labels"]] + [c["text"] for c in layout["cells"]]
    for name in names:
        assert any(name in text for text in texts), f"{name!r} is shown nowhere whole"
    for picture in layout["pictures"]:
        for label in picture["labels"]:
            assert label["x"] >= 0, f"{label['text']!r} starts left of the picture"
            assert label["right"] <= picture["plot_x0"] + 1, f"{label['text']!r} runs into the plot"
    for cell in layout["cells"]:
        assert not cell["overflow"], f"cell {cell['text'][:60]!r} hides part of its text"
