"""GLUE-style metrics as an `evaluate` module that loads offline, with the majority-class baseline beside them.

`evaluate.load("glue", "mrpc")` fetches its script from the Hub; this file is a local metric module with the same
API: `evaluate.load(path_to_this_file, "mrpc")`, or `load_glue_metric("mrpc")`. Configurations: "mrpc" and "qqp"
(accuracy, F1 of class 1), "sst2" (accuracy), "cola" (Matthews correlation and accuracy), "default" (accuracy, and
macro F1 when there are more than two classes). Every result also reports what always predicting the most frequent
reference class scores (`majority_*`): on MRPC that baseline already reaches F1 ~0.81, so F1 alone says little.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import datasets
import evaluate

TASKS = ("mrpc", "qqp", "sst2", "cola", "default")


def _accuracy(predictions, references) -> float:
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def _f1(predictions, references, positive: int = 1) -> float:
    true_positive = sum(p == positive and r == positive for p, r in zip(predictions, references))
    predicted = sum(p == positive for p in predictions)
    actual = sum(r == positive for r in references)
    return 0.0 if predicted + actual == 0 else 2 * true_positive / (predicted + actual)


def _macro_f1(predictions, references) -> float:
    labels = sorted(set(references) | set(predictions))
    return sum(_f1(predictions, references, label) for label in labels) / len(labels)


def _matthews(predictions, references) -> float:
    tp = sum(p == 1 and r == 1 for p, r in zip(predictions, references))
    tn = sum(p == 0 and r == 0 for p, r in zip(predictions, references))
    fp = sum(p == 1 and r == 0 for p, r in zip(predictions, references))
    fn = sum(p == 0 and r == 1 for p, r in zip(predictions, references))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else (tp * tn - fp * fn) / denominator


def glue_scores(task: str, predictions: list[int], references: list[int]) -> dict[str, float]:
    """The task's metrics for `predictions`, and for the majority-class baseline (keys prefixed `majority_`)."""
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    if len(predictions) != len(references) or not references:
        raise ValueError(
            f"`predictions` and `references` must be non-empty and of equal length, got {len(predictions)} and "
            f"{len(references)}."
        )

    def scores(predicted) -> dict[str, float]:
        result = {"accuracy": _accuracy(predicted, references)}
        if task in ("mrpc", "qqp"):
            result["f1"] = _f1(predicted, references)
        elif task == "cola":
            result["matthews_correlation"] = _matthews(predicted, references)
        elif task == "default" and len(set(references)) > 2:
            result["macro_f1"] = _macro_f1(predicted, references)
        elif task == "default":
            result["f1"] = _f1(predicted, references)
        return result

    majority = Counter(references).most_common(1)[0][0]
    baseline = scores([majority] * len(references))
    return {**scores(list(predictions)), **{f"majority_{key}": value for key, value in baseline.items()}}


class GlueMetric(evaluate.Metric):
    """Accuracy / F1 / Matthews correlation by GLUE task, with the majority-class baseline."""

    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="predictions and references: lists of integer class ids.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        task = self.config_name if self.config_name in TASKS else "default"
        return glue_scores(task, list(predictions), list(references))


def load_glue_metric(task: str = "default"):
    """`evaluate.load` of this module, offline.

    Args:
        task: "mrpc", "qqp", "sst2", "cola" or "default".

    Returns:
        An `evaluate.EvaluationModule` whose `compute(predictions=..., references=...)` returns the task's metrics.

    Example:
        >>> load_glue_metric("mrpc").compute(predictions=[1, 0, 1], references=[1, 1, 1])  # doctest: +SKIP
        {'accuracy': 0.667, 'f1': 0.8, 'majority_accuracy': 1.0, 'majority_f1': 1.0}
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    return evaluate.load(str(Path(__file__)), task)
