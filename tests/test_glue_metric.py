import math

import pytest

from modeling_ternary.glue_metric import glue_scores, load_glue_metric


def test_mrpc_through_the_evaluate_api_offline():
    metric = load_glue_metric("mrpc")
    predictions, references = [1, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 1]
    result = metric.compute(predictions=predictions, references=references)
    # by hand: tp=3, fp=1, fn=1 -> F1 = 6 / (4 + 4) = 0.75; 4 of 6 right
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["f1"] == pytest.approx(0.75)
    # majority class is 1 (4 of 6): accuracy 4/6, F1 = 2*4 / (6 + 4) = 0.8
    assert result["majority_accuracy"] == pytest.approx(4 / 6)
    assert result["majority_f1"] == pytest.approx(0.8)


def test_cola_matthews_correlation_and_degenerate_cases():
    predictions, references = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    tp, tn, fp, fn = 2, 1, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    result = glue_scores("cola", predictions, references)
    assert result["matthews_correlation"] == pytest.approx(expected)
    assert result["majority_matthews_correlation"] == 0.0  # a constant prediction has no correlation
    assert load_glue_metric("sst2").compute(predictions=[0, 1], references=[0, 0]) == {
        "accuracy": 0.5, "majority_accuracy": 1.0}


def test_multiclass_default_uses_macro_f1():
    result = glue_scores("default", [0, 1, 2, 2], [0, 1, 1, 2])
    # per class F1: 0 -> 1.0, 1 -> 2*1/(1+2) = 2/3, 2 -> 2*1/(2+1) = 2/3
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"`task` must be one of .*'rte'"):
        load_glue_metric("rte")
    with pytest.raises(ValueError, match=r"non-empty and of equal length, got 2 and 3"):
        glue_scores("mrpc", [1, 0], [1, 0, 1])
