import numpy as np
import pandas as pd
import pytest

from sk_mmoe._targets import TaskEncoder, infer_task_type, missing_mask, split_columns


def test_split_columns_keeps_dataframe_dtypes():
    y = pd.DataFrame({"a": ["x", "y", "x"], "b": [1, 2, 3]})
    columns, names, single = split_columns(y)
    assert names.tolist() == ["a", "b"]
    assert not single
    assert columns[0].dtype == object
    assert columns[1].dtype.kind == "i"


def test_split_columns_1d_and_errors():
    columns, names, single = split_columns([1.0, 2.0])
    assert single and names is None and len(columns) == 1
    with pytest.raises(ValueError, match="1-D"):
        split_columns(np.zeros((2, 2, 2)))


def test_missing_mask_recognises_none_nan_and_pd_na():
    col = np.array(["a", None, np.nan, pd.NA, "b"], dtype=object)
    assert missing_mask(col).tolist() == [False, True, True, True, False]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.1, 0.5, 2.3], "regression"), (["a", "b"], "binary"), ([1, 2, 3], "multiclass")],
)
def test_infer_task_type(values, expected):
    assert infer_task_type(np.asarray(values), "y") == expected


def test_encoder_round_trip_regression_and_classes():
    reg = np.array([10.0, 20.0, 30.0, 40.0])
    lab = np.array(["b", "a", "c", "a"], dtype=object)
    enc = TaskEncoder(["regression", "multiclass"], ["r", "l"]).fit([reg, lab])
    assert enc.output_widths == [1, 3]
    encoded = enc.transform([reg, lab])
    assert encoded.dtype == np.float32
    np.testing.assert_allclose(encoded[:, 0].mean(), 0.0, atol=1e-6)
    assert encoded[:, 1].tolist() == [1, 0, 2, 0]
    # network outputs: standardised value, then one-hot logits
    outputs = np.column_stack([encoded[:, 0], np.eye(3)[encoded[:, 1].astype(int)] * 5])
    decoded = enc.decode(outputs)
    np.testing.assert_allclose(decoded[0], reg, rtol=1e-6)
    assert decoded[1].tolist() == lab.tolist()


def test_encoder_missing_cells_become_nan():
    col = np.array([1.0, np.nan, 3.0])
    enc = TaskEncoder(["regression"], ["r"]).fit([col])
    assert np.isnan(enc.transform([col])[1, 0])


def test_encoder_single_class_and_unseen_labels():
    with pytest.raises(ValueError, match="single class"):
        TaskEncoder(["binary"], ["'c'"]).fit([np.array(["a", "a"], dtype=object)])
    enc = TaskEncoder(["binary"], ["'c'"]).fit([np.array(["a", "b"], dtype=object)])
    with pytest.raises(ValueError, match=r"not seen during fit: \['z'\]"):
        enc.transform([np.array(["a", "z"], dtype=object)])


def test_encoder_rejects_mixed_label_types_in_one_column():
    with pytest.raises(TypeError, match="mixes label types"):
        TaskEncoder(["binary"], ["'c'"]).fit([np.array(["a", 1], dtype=object)])


def test_binary_probabilities_sum_to_one():
    enc = TaskEncoder(["binary"], ["c"]).fit([np.array([0, 1, 1])])
    p = enc.probabilities(0, np.array([[0.0], [2.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], [0.5, 0.5])
