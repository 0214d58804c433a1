"""The documentation's Python examples run as doctests, so the site never lies.

Every page under ``docs/`` (Markdown or reStructuredText, not the build
output) that holds a ``>>>`` example is run with :func:`doctest.testfile`,
as ``tests/test_readme.py`` runs the README. Each page runs on its own:
it imports and builds what it uses.
"""

import doctest
import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: folders of build output and generated pages, not sources
GENERATED = {"_build", "generated", "auto_examples", "_templates"}
#: page -> the optional packages its examples import (skipped without them)
NEEDS = {
    "user_guide/saving_and_serving.md": ["onnx", "onnxruntime", "skl2onnx"],
    "user_guide/larger_than_memory.md": ["pyarrow", "polars"],
    "user_guide/task_weighting.md": ["matplotlib"],
}


def _pages():
    pages = []
    for path in sorted(DOCS.rglob("*")):
        if path.suffix not in {".md", ".rst"} or GENERATED & set(path.relative_to(DOCS).parts):
            continue
        if ">>>" in path.read_text(encoding="utf-8"):
            pages.append(path.relative_to(DOCS).as_posix())
    return pages


PAGES = _pages()


def test_user_guide_pages_have_examples():
    # the pages that moved out of the README keep their examples
    for page in [
        "user_guide/tasks_and_targets.md",
        "user_guide/architectures.md",
        "user_guide/gates.md",
        "user_guide/ensembles.md",
        "user_guide/missing_labels.md",
        "user_guide/task_weighting.md",
        "user_guide/categorical_features.md",
        "user_guide/model_selection.md",
        "user_guide/saving_and_serving.md",
    ]:
        assert page in PAGES, f"docs/{page} has no >>> example"


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page):
    missing = [name for name in NEEDS.get(page, []) if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"docs/{page} needs {', '.join(missing)}")
    result = doctest.testfile(
        str(DOCS / page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) of docs/{page} failed (see above)"
