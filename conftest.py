"""Collection settings for the whole repository (the doctests of ``sk_mmoe`` included).

``sk_mmoe/onnx.py`` needs the optional ``onnx`` extra; without it, its
doctests are not collected (``tests/test_onnx.py`` skips on its own).
"""

import importlib.util

collect_ignore = []
if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime", "skl2onnx")):
    collect_ignore.append("sk_mmoe/onnx.py")
