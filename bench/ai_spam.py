"""SMS spam: fixed-seed 80/20 split of /work/shared/data/sms_spam/all.jsonl.

    .venv/bin/python bench/ai_spam.py

Prints precision/recall/F1 of spam on the 20% test part for
- the rule scorer alone (the default, trained on nothing),
- the trained classifier (n-grams + MiniLM + rules), threshold chosen by 5-fold
  cross-validation on the 80% train part only (highest F1 with precision >= 99%).
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

from caredesk.ai.embedder import get_embedder  # noqa: E402
from caredesk.ai.metrics import binary_report  # noqa: E402
from caredesk.ai.spam import RuleSpamScorer, SpamClassifier  # noqa: E402

DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", ROOT.parent / "shared" / "data"))
SEED = 42


def pick_threshold(scores: np.ndarray, gold: np.ndarray, min_precision: float = 0.99) -> float:
    best, best_f1 = 0.5, -1.0
    for th in np.unique(scores):
        pred = scores >= th
        tp = int((pred & gold).sum())
        fp = int((pred & ~gold).sum())
        fn = int((~pred & gold).sum())
        if tp == 0 or tp / (tp + fp) < min_precision:
            continue
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best_f1:
            best, best_f1 = float(th), f1
    return best


def main() -> None:
    rows = [json.loads(line) for line in (DATA / "sms_spam" / "all.jsonl").open()]
    order = np.random.default_rng(SEED).permutation(len(rows))
    cut = int(0.8 * len(rows))
    train = [rows[i] for i in order[:cut]]
    test = [rows[i] for i in order[cut:]]
    tr_text = [r["text"] for r in train]
    te_text = [r["text"] for r in test]
    tr_y = np.array([r["label"] == "spam" for r in train])
    te_y = np.array([r["label"] == "spam" for r in test])
    print(
        f"sms_spam: train {len(train)} ({tr_y.sum()} spam), test {len(test)} ({te_y.sum()} spam), seed {SEED}"
    )

    rules = np.array(RuleSpamScorer().score(te_text))
    print("rules only (threshold 0.5):", binary_report(list(te_y), list(rules >= 0.5)))

    emb = get_embedder()
    started = time.perf_counter()
    tr_vec, te_vec = emb.embed(tr_text), emb.embed(te_text)
    print(f"embedded {len(rows)} messages in {time.perf_counter() - started:.1f}s")

    for use_vectors in (False, True):
        name = "n-grams+MiniLM+rules" if use_vectors else "n-grams+rules"
        folds = np.arange(len(train)) % 5
        oof = np.zeros(len(train))
        for k in range(5):
            fit, held = folds != k, folds == k
            clf = SpamClassifier.train(
                [t for t, f in zip(tr_text, fit, strict=True) if f],
                tr_y[fit],
                tr_vec[fit] if use_vectors else None,
            )
            oof[held] = clf.score(
                [t for t, h in zip(tr_text, held, strict=True) if h], tr_vec[held] if use_vectors else None
            )
        th = pick_threshold(oof, tr_y)
        started = time.perf_counter()
        clf = SpamClassifier.train(tr_text, tr_y, tr_vec if use_vectors else None)
        fit_s = time.perf_counter() - started
        scores = np.array(clf.score(te_text, te_vec if use_vectors else None))
        print(f"{name}: threshold {th:.3f} (5-fold CV on train), fit {fit_s:.1f}s")
        print(f"  test at CV threshold: {binary_report(list(te_y), list(scores >= th))}")
        print(f"  test at 0.5:          {binary_report(list(te_y), list(scores >= 0.5))}")


if __name__ == "__main__":
    main()
