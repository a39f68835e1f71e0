"""The docs site: strict build, API reference coverage, links, and a real browser."""

import html.parser
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest
from snippets import DOCS_DIR, REPO_ROOT

import specformer_keras

API_SYMBOLS_IN_BROWSER = (
    "SpectralMultiHeadAttention",
    "SpectralViT",
    "evaluate_robustness",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class _LinkParser(html.parser.HTMLParser):
    """Collects link targets (href/src) and element ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.links = []
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (
                tag == "link" and attrs.get("rel") == "canonical"
            ):
                self.links.append(attrs[key])


def _fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get_content_type(), response.read()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Chromium not found on PATH (install Debian's package: "
        "apt-get update && apt-get install -y chromium); the browser test cannot run"
    )


def _run_chromium(args, timeout=180):
    with tempfile.TemporaryDirectory() as profile:
        command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout
        )
    return result


def test_strict_build_produces_every_page(built_site):
    with open(os.path.join(REPO_ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        nav_pages = re.findall(r":\s*([\w/]+)\.md\s*$", f.read(), re.MULTILINE)
    assert len(nav_pages) >= 14, nav_pages
    for page in nav_pages:
        expected = "index.html" if page == "index" else os.path.join(page, "index.html")
        assert os.path.isfile(os.path.join(built_site, expected)), expected
    # Every Markdown page is in the nav (mkdocs --strict also warns otherwise).
    on_disk = {name[:-3] for name in os.listdir(DOCS_DIR) if name.endswith(".md")}
    assert on_disk == set(nav_pages)


def test_home_figure_is_built_and_small(built_site):
    figure = os.path.join(built_site, "assets", "sigma_per_layer.png")
    assert os.path.isfile(figure)
    with open(figure, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < os.path.getsize(figure) < 200_000


def test_api_reference_lists_every_public_symbol(built_site):
    with open(os.path.join(built_site, "api", "index.html"), encoding="utf-8") as f:
        page = f.read()
    missing = [
        name
        for name in specformer_keras.__all__
        if f'id="specformer_keras.{name}"' not in page
    ]
    assert not missing, f"public symbols missing from the API reference: {missing}"


def test_no_broken_internal_links(site_url):
    """Crawls the served site from its home page: every internal link resolves."""
    queue, seen, broken, pages = [site_url], set(), [], {}
    fragments = []  # (source page, target page url, fragment)
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        try:
            status, content_type, body = _fetch(url)
        except urllib.error.HTTPError as error:
            broken.append(f"{url} -> HTTP {error.code}")
            continue
        assert status == 200
        if content_type != "text/html":
            continue
        parser = _LinkParser()
        parser.feed(body.decode("utf-8", "replace"))
        pages[url] = parser.ids
        for link in parser.links:
            target = urllib.parse.urljoin(url, link)
            if not target.startswith(site_url):
                continue  # external (or another scheme): not ours to check
            target, _, fragment = target.partition("#")
            target = target.split("?")[0]
            if fragment:
                fragments.append((url, target, urllib.parse.unquote(fragment)))
            if target not in seen:
                queue.append(target)
    for source, target, fragment in fragments:
        ids = pages.get(target)
        if ids is not None and fragment not in ids:
            broken.append(f"{source} -> {target}#{fragment} (no such id)")
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))
    assert len(pages) >= 14, sorted(pages)


def test_browser_renders_api_reference(site_url):
    result = _run_chromium(["--dump-dom", site_url + "api/"])
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "<title>" in dom and "API reference" in dom
    for name in API_SYMBOLS_IN_BROWSER:
        # Rendered by mkdocstrings as a heading with the symbol's id.
        assert re.search(rf'id="specformer_keras\.{name}"', dom), name
    # Material's JavaScript ran (it adds its copy buttons / search to the DOM).
    assert "md-search" in dom


def test_browser_screenshots_home_page(site_url, tmp_path):
    screenshot = tmp_path / "home.png"
    result = _run_chromium(
        [f"--screenshot={screenshot}", "--window-size=1200,900", site_url]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
