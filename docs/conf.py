"""Sphinx configuration of the sk_mmoe documentation site.

Build it with ``python -m sphinx -W -b html docs docs/_build/html``. With
``SK_MMOE_EXAMPLE_QUICK=1`` in the environment the gallery examples run on
small sizes (a few seconds each, as in CI); without it they run full size.
Nothing here reaches the network: no intersphinx.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the package of this checkout first (not another editable install), then the
# diagram helpers beside this file
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

import sk_mmoe  # noqa: E402

project = "sk_mmoe"
author = "the sk_mmoe developers"
copyright = "the sk_mmoe developers, BSD-3-Clause"
release = version = sk_mmoe.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
templates_path = ["_templates"]

# -- API reference --------------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False  # autosummary lists the members
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown pages (the user guide; README.md, docs/scaling.md and benchmarks/README.md) ---------
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3  # "#speed-runpy"-style links between Markdown pages resolve

# -- example gallery ------------------------------------------------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # every example runs (its printed output and figures go on its page), except the
    # multi-GPU one, which needs ``accelerate`` and GPUs; tests/test_distributed.py runs
    # it on the CPU and tests/test_examples.py runs the others
    "filename_pattern": r"/(?!multi_gpu_)[^/]+\.py$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "reference_url": {"sk_mmoe": None},
    "backreferences_dir": None,
    "within_subsection_order": "FileNameSortKey",
}

# -- architecture diagrams (docs/_diagrams.py, drawn with matplotlib at build time) --------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("svg", 100)]
plot_rcparams = {"font.size": 9}

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_mmoe {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 8,
}
html_show_sourcelink = False
