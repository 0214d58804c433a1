"""The built documentation site renders for a person.

Every HTML page of the site parses, every ``<img>`` (and ``srcset``) file
exists, and every internal link resolves: to a page that exists and, for a
``#fragment``, to an element with that id. The key pages are there, and
the gallery pages carry their examples' figures and printed output.

The site is the one in ``$SK_MMOE_DOCS_HTML`` when set (``.ci/run`` sets it
to the build it has just made); otherwise this module builds it once, in a
temporary folder, with warnings as errors and the examples on small sizes
(``SK_MMOE_EXAMPLE_QUICK=1``, about half a minute). Skipped, saying which,
when the ``[docs]`` packages are not installed.
"""

import importlib.util
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_PACKAGES = ["sphinx", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme", "myst_parser"]


class _Page(HTMLParser):
    """The ids, links and image sources of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.images, self.title = set(), [], [], None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            if attrs.get("src"):
                self.images.append(attrs["src"])
            for candidate in (attrs.get("srcset") or "").split(","):
                if candidate.strip():
                    self.images.append(candidate.split()[0])
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title = (self.title or "") + data


def _external(url):
    parts = urlsplit(url)
    return bool(parts.scheme or parts.netloc) or url.startswith(("mailto:", "data:"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("SK_MMOE_DOCS_HTML")
    if given:
        html = Path(given).resolve()
        assert (html / "index.html").is_file(), f"no built site in {html}"
        return html
    missing = [name for name in DOCS_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"building the site needs the [docs] extra; missing: {', '.join(missing)}")
    work = tmp_path_factory.mktemp("site")
    html = work / "html"
    env = {
        **os.environ,
        "SK_MMOE_EXAMPLE_QUICK": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    # -E: read every source; -d: doctrees beside the output, not in docs/_build
    command = [sys.executable, "-m", "sphinx", "-W", "-E", "-q", "-b", "html"]
    command += ["-d", str(work / "doctrees"), str(ROOT / "docs"), str(html)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"the site build failed:\n{result.stdout}\n{result.stderr}"
    return html


@pytest.fixture(scope="module")
def pages(site):
    parsed = {}
    for path in sorted(site.rglob("*.html")):
        if path.relative_to(site).parts[0].startswith("_"):  # _static, _sources: not pages
            continue
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        parsed[path] = page
    return parsed


def test_key_pages_exist(site):
    for name in [
        "index.html",
        "getting_started.html",
        "user_guide/index.html",
        "user_guide/architectures.html",
        "user_guide/saving_and_serving.html",
        "scaling.html",
        "api.html",
        "generated/sk_mmoe.MMoEMultiTask.html",
        "auto_examples/index.html",
        "auto_examples/plot_three_targets_grid_search.html",
        "reproduction.html",
        "benchmarks.html",
        "changelog.html",
    ]:
        assert (site / name).is_file(), f"{name} is missing from the site"


def test_every_page_opens(pages):
    assert len(pages) > 20
    for path, page in pages.items():
        assert page.title and page.title.strip(), f"{path} has no title"


def test_every_image_exists(pages):
    missing = []
    for path, page in pages.items():
        for src in page.images:
            if _external(src):
                continue
            target = (path.parent / unquote(urlsplit(src).path)).resolve()
            if not target.is_file():
                missing.append(f"{path.name}: {src}")
    assert not missing, "images that do not exist:\n" + "\n".join(missing)


def test_every_internal_link_resolves(pages):
    broken = []
    for path, page in pages.items():
        for href in page.links:
            if _external(href):
                continue
            parts = urlsplit(href)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{path.name}: {href} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.name}: {href} (no such id)")
    assert not broken, "links that do not resolve:\n" + "\n".join(sorted(set(broken)))


def test_gallery_pages_show_output_and_figures(site, pages):
    # script -> text its printed output contains; every executed example has a figure
    for name, text in {
        "plot_correlation_experiment": "lowest test MSE",
        "plot_gate_weights": "mean gate weights",
        "plot_three_targets_grid_search": "satisfaction R2",
        "real_data_fertility": "Best per metric",
    }.items():
        path = (site / "auto_examples" / f"{name}.html").resolve()
        assert text in path.read_text(encoding="utf-8"), f"{name}: printed output missing"
        if name.startswith("plot_"):
            figures = [src for src in pages[path].images if "sphx_glr_" in src]
            assert figures, f"{name}: no figure on its gallery page"


def test_architecture_diagrams_are_drawn(site, pages):
    path = (site / "user_guide" / "architectures.html").resolve()
    diagrams = [src for src in pages[path].images if src.endswith(".svg")]
    assert len(diagrams) == 5, diagrams
