"""Intent accuracy on the public data sets, through the same code as `caredesk nlu train/eval`.

    .venv/bin/python bench/ai_intent.py [banking77 clinc150 banking77_oos hwu64]

- BANKING77: train on train, report on test.
- CLINC150 (only train and valid here): (a) thresholds from a 15% split of train, report on all of
  valid; (b) thresholds chosen on one half of valid, reported on the other half, both ways, averaged.
- BANKING77-OOS: train on train, report on valid (thresholds from train only).
- HWU64: train on train, thresholds on valid, report on test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from caredesk.ai.intent import IntentClassifier  # noqa: E402
from caredesk.ai.metrics import intent_report  # noqa: E402

DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load(name: str, split: str) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (DATA / name / f"{split}.jsonl").open()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def run(name: str, train: str, test: str, valid: str | None = None) -> None:
    x, y = load(name, train)
    held = load(name, valid) if valid else None
    started = time.perf_counter()
    model = IntentClassifier.train(x, y, valid=held)
    fit = time.perf_counter() - started
    tx, ty = load(name, test)
    started = time.perf_counter()
    pred = [p.label for p in model.predict(tx)]
    speed = len(tx) / (time.perf_counter() - started)
    thr = f"valid={valid}" if valid else "15% of train"
    print(
        f"{name}: train={train} ({len(x)}), eval={test} ({len(tx)}), thresholds from {thr}; train {fit:.1f}s"
    )
    print(f"  {intent_report(ty, pred)} {speed:.0f} msg/s")


def clinc_split_valid() -> None:
    x, y = load("clinc150", "train")
    vx, vy = load("clinc150", "valid")
    started = time.perf_counter()
    model = IntentClassifier.train(x, y)
    print(f"clinc150: train ({len(x)}) {time.perf_counter() - started:.1f}s, thresholds from 15% of train")
    print(f"  on all valid: {intent_report(vy, [p.label for p in model.predict(vx)])}")
    # Thresholds on half of valid, report on the other half (and the other way round).
    vecs = model.embedder.embed(vx)
    _proba, score = model.core.scores(vx, vecs)
    from caredesk.ai.intent import _choose_threshold

    labels = [model.labels[int(k)] for k in _proba.argmax(axis=1)]
    half = np.random.default_rng(0).random(len(vx)) < 0.5
    reports = []
    for tune, test in ((half, ~half), (~half, half)):
        th = _choose_threshold(
            score[tune],
            [lab for lab, t in zip(labels, tune, strict=True) if t],
            [g for g, t in zip(vy, tune, strict=True) if t],
        )
        pred = [("oos" if (lab == "oos" or s < th) else lab) for lab, s in zip(labels, score, strict=True)]
        reports.append(
            intent_report(
                [g for g, t in zip(vy, test, strict=True) if t],
                [p for p, t in zip(pred, test, strict=True) if t],
            )
        )
        print(f"  threshold {th:.3f} from one half of valid, other half: {reports[-1]}")
    keys = ("accuracy", "in_scope_accuracy", "oos_recall", "oos_precision")
    print("  mean of both halves:", {k: round(float(np.mean([r[k] for r in reports])), 4) for k in keys})


def main() -> None:
    which = sys.argv[1:] or ["banking77", "clinc150", "banking77_oos", "hwu64"]
    if "banking77" in which:
        run("banking77", "train", "test")
    if "clinc150" in which:
        clinc_split_valid()
    if "banking77_oos" in which:
        run("banking77_oos", "train", "valid")
    if "hwu64" in which:
        run("hwu64", "train", "test", valid="valid")


if __name__ == "__main__":
    main()
