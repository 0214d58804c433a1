"""numpydoc validation of every public class, method and function.

An undocumented parameter, a parameter documented under the wrong name, a
missing Returns section or a summary in the wrong form fails here, and so in
CI.
"""

import importlib
import importlib.util
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

PUBLIC_MODULES = [
    "sk_mmoe",
    "sk_mmoe.architectures",
    "sk_mmoe.callbacks",
    "sk_mmoe.datasets",
    "sk_mmoe.metrics",
    "sk_mmoe.model_selection",
    "sk_mmoe.onnx",
    "sk_mmoe.plotting",
]
#: public modules that need an optional extra: checked only where it is installed
OPTIONAL_MODULES = {"sk_mmoe.onnx": "skl2onnx"}

#: numpydoc checks we do not require: See Also, Examples and an extended
#: summary on every object; a name beside the type of a single return value
#: (scikit-learn's own style: ``self : object``)
IGNORED = {"SA01", "EX01", "ES01", "RT02"}


def _public_names():
    names = []
    for module_name in PUBLIC_MODULES:
        needs = OPTIONAL_MODULES.get(module_name)
        if needs is not None and importlib.util.find_spec(needs) is None:
            continue
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            # classes and functions (not scorer instances, documented by their class)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not obj.__module__.startswith("sk_mmoe"):
                continue
            qualified = f"{module_name}.{name}"
            names.append(qualified)
            if not inspect.isclass(obj):
                continue
            members = set()
            for klass in obj.__mro__:
                if not klass.__module__.startswith("sk_mmoe"):
                    continue
                members |= {
                    attr
                    for attr, value in vars(klass).items()
                    if not attr.startswith("_")
                    and (inspect.isfunction(value) or isinstance(value, (property, classmethod)))
                }
            names += [f"{qualified}.{attr}" for attr in sorted(members)]
    return names


def test_public_api_is_listed():
    names = _public_names()
    for expected in ["sk_mmoe.MMoERegressor.fit", "sk_mmoe.MMoEMultiTask.predict_proba"]:
        assert expected in names


@pytest.mark.parametrize("name", _public_names())
def test_docstring(name):
    result = numpydoc_validate.validate(name)
    errors = [f"{code}: {msg}" for code, msg in result["errors"] if code not in IGNORED]
    assert not errors, f"{name}:\n" + "\n".join(errors)
