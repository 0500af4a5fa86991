"""Evaluation figures shared by `caredesk nlu eval` and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

OOS = "oos"


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def intent_report(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float | int]:
    """accuracy over all rows; in-scope accuracy; out-of-scope recall and precision; macro F1."""
    pairs = list(zip(gold, pred, strict=True))
    in_scope = [(g, p) for g, p in pairs if g != OOS]
    oos_gold = sum(g == OOS for g in gold)
    oos_pred = sum(p == OOS for p in pred)
    oos_hit = sum(g == OOS and p == OOS for g, p in pairs)
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == label and p == label for g, p in pairs)
        fp = sum(g != label and p == label for g, p in pairs)
        fn = sum(g == label and p != label for g, p in pairs)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {
        "examples": len(pairs),
        "accuracy": _ratio(sum(g == p for g, p in pairs), len(pairs)),
        "in_scope_accuracy": _ratio(sum(g == p for g, p in in_scope), len(in_scope)),
        "oos_examples": oos_gold,
        "oos_recall": _ratio(oos_hit, oos_gold),
        "oos_precision": _ratio(oos_hit, oos_pred),
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
    }


def binary_report(gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, float | int]:
    pairs = [(bool(g), bool(p)) for g, p in zip(gold, pred, strict=True)]
    tp = sum(g and p for g, p in pairs)
    fp = sum((not g) and p for g, p in pairs)
    fn = sum(g and not p for g, p in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "examples": len(gold),
        "positives": tp + fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }
