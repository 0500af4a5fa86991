"""Per-account intent model: trained in seconds from labelled examples.

What it is, and why (figures in docs/benchmarks.md):
- two linear models, averaged in log space: logistic regression on frozen MiniLM
  sentence vectors (meaning), and logistic regression on TF-IDF character and word
  n-grams (exact wording, product names, typos). On BANKING77 the pair beats either
  alone by 1.5 to 3 points, at a fraction of the cost of fine-tuning the encoder.
- out of scope: rows labelled `oos` train an explicit "none of these" class, and a
  score mixing the top in-scope probability with the mean cosine similarity to the
  3 nearest in-scope training examples is compared with a threshold. The threshold
  is chosen on held-out data (the `valid` rows if given, otherwise a 15% split of
  the training rows), to maximise accuracy counting `oos` as a label, with
  out-of-scope rows weighted up to at least 10% of the total.
- the vectors a model was trained on are recorded (`MiniLMEmbedder.version`, e.g. int8 or fp32
  MiniLM); loading it where the embedder makes other vectors logs a warning and still serves it.
  Measured for a model trained on fp32 vectors and served int8 ones: BANKING77 94.03% -> 93.96%,
  CLINC150 in-scope 96.2% and out-of-scope recall 87% unchanged. Retraining removes the warning.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from caredesk.ai.embedder import VECTORS, get_embedder, limit_blas_threads, vectors_version
from caredesk.ai.protocols import Embedder, IntentPrediction, Vectors

log = logging.getLogger(__name__)

OOS = "oos"
FORMAT = "caredesk-intent-1"
NGRAM_WEIGHT = 0.35  # share of the n-gram model in the log-probability mix
KNN = 3
OOS_MIN_SHARE = 0.1
BANK_PER_CLASS = int(os.environ.get("CAREDESK_INTENT_BANK", "32"))
# Models saved before the vectors were recorded were all trained on fp32 MiniLM vectors.
UNRECORDED_VECTORS = VECTORS["fp32"]
Progress = Callable[[str], None]
Floats = npt.NDArray[np.float64]


class ModelDirError(Exception):
    """The model folder is missing or not a Caredesk intent model."""


class _Linear:
    """A fitted multinomial logistic regression, kept as plain arrays for fast scoring."""

    def __init__(self, coef: npt.NDArray[np.float32], intercept: npt.NDArray[np.float32]) -> None:
        # Stored features x classes, contiguous: `x @ coef.T` on a sparse x made scipy copy the
        # whole transposed matrix on every call (4 ms a message for 77 intents).
        self.weights = np.ascontiguousarray(coef.T)
        self.intercept = intercept

    @property
    def coef(self) -> npt.NDArray[np.float32]:
        return self.weights.T

    def log_proba(self, x: Any) -> Floats:
        logits = np.asarray(x @ self.weights, dtype=np.float64) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        out: Floats = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return out


def _fit_linear(x: Any, y: npt.NDArray[np.int64], n_classes: int, c: float) -> _Linear:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(x, y)
    coef = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -1e4, dtype=np.float32)  # classes absent from a split
    if len(clf.classes_) == 2:  # sklearn returns one row for two classes
        coef[clf.classes_[1]] = clf.coef_[0] / 2
        coef[clf.classes_[0]] = -clf.coef_[0] / 2
        intercept[clf.classes_[1]] = clf.intercept_[0] / 2
        intercept[clf.classes_[0]] = -clf.intercept_[0] / 2
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    return _Linear(coef, intercept)


def _vectorizers() -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=True, dtype=np.float32
    )
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, dtype=np.float32)
    return chars, words


class _NGrams:
    """`hstack([v.transform(texts) for v in vectorizers]).tocsr()` for fitted TF-IDF vectorizers,
    without scikit-learn's per-call input checks, which cost more than the features themselves
    for one message (about 4 ms of 4.5 ms on this machine).

    Same features and values: counts from each vectorizer's own analyzer and vocabulary, then
    sublinear tf (1 + log count), times idf, l2-normalised per vectorizer; float32 CSR.
    """

    def __init__(self, vectorizers: Sequence[Any]) -> None:
        self.parts: list[tuple[Callable[[str], list[str]], dict[str, int], int]] = []
        idfs: list[npt.NDArray[np.float32]] = []
        offset = 0
        for vec in vectorizers:
            if vec.binary or not vec.sublinear_tf or not vec.use_idf or vec.norm != "l2":
                raise ValueError("expected sublinear-tf, idf, l2-normalised TF-IDF vectorizers")
            self.parts.append((vec.build_analyzer(), vec.vocabulary_, offset))
            idfs.append(np.asarray(vec.idf_, dtype=np.float32))
            offset += len(vec.vocabulary_)
        self.width = offset
        self.idf = np.concatenate(idfs) if idfs else np.zeros(0, dtype=np.float32)

    def transform(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix

        cols: list[int] = []
        counts: list[int] = []
        block_ends: list[int] = []  # one block of columns per (text, vectorizer), normalised alone
        for text in texts:
            for analyze, vocabulary, offset in self.parts:
                found = Counter(map(vocabulary.get, analyze(text)))  # counted in C
                found.pop(None, None)  # features not in the vocabulary
                cols += [j + offset for j in found if j is not None]
                counts += found.values()
                block_ends.append(len(cols))
        indices = np.asarray(cols, dtype=np.int32)
        data = np.log(np.asarray(counts, dtype=np.float32)) + np.float32(1.0)
        data *= self.idf[indices]
        ends = np.asarray(block_ends, dtype=np.int64)
        block = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=0))
        norms = np.sqrt(np.bincount(block, weights=data * data, minlength=len(ends))).astype(np.float32)
        data /= norms[block]
        indptr = np.concatenate([[0], ends[len(self.parts) - 1 :: len(self.parts)]]).astype(np.int32)
        out = csr_matrix((data, indices, indptr), shape=(len(texts), self.width))
        out.sort_indices()
        return out


class _Core:
    """The fitted parts; `IntentClassifier` adds the threshold and persistence."""

    def __init__(self, labels: list[str], emb: _Linear, ngram: _Linear, vecs: tuple[Any, Any], bank: Vectors):
        self.labels = labels
        self.emb = emb
        self.ngram = ngram
        self.vecs = vecs
        self.ngrams = _NGrams(vecs)
        limit_blas_threads()  # small products: one BLAS thread is faster (see the function)
        self.bank = bank  # unit vectors of in-scope training examples, for the distance score
        self.bank_t = np.ascontiguousarray(bank.T)
        self.oos_index = labels.index(OOS) if OOS in labels else -1

    @classmethod
    def fit(
        cls, texts: Sequence[str], y: npt.NDArray[np.int64], labels: list[str], vectors: Vectors
    ) -> _Core:
        from scipy.sparse import hstack

        emb = _fit_linear(vectors, y, len(labels), c=10.0)
        chars, words = _vectorizers()
        grams = hstack([chars.fit_transform(texts), words.fit_transform(texts)]).tocsr()
        ngram = _fit_linear(grams, y, len(labels), c=30.0)
        return cls(labels, emb, ngram, (chars, words), _bank(vectors, y, labels))

    def scores(self, texts: Sequence[str], vectors: Vectors, grams: Any = None) -> tuple[Floats, Floats]:
        """(probabilities per class, in-scope score) per text; `grams`: `self.ngrams.transform(texts)`
        if already worked out."""
        if grams is None:
            grams = self.ngrams.transform(texts)
        mixed = (1 - NGRAM_WEIGHT) * self.emb.log_proba(vectors) + NGRAM_WEIGHT * self.ngram.log_proba(grams)
        mixed -= mixed.max(axis=1, keepdims=True)
        proba = np.exp(mixed)
        proba /= proba.sum(axis=1, keepdims=True)
        in_scope = proba.copy()
        if self.oos_index >= 0:
            in_scope[:, self.oos_index] = 0.0
        top = in_scope.max(axis=1)
        if len(self.bank):
            sims = vectors @ self.bank_t
            k = min(KNN, sims.shape[1])
            near = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
        else:
            near = np.zeros(len(texts))
        return proba, 0.5 * top + 0.5 * near


def _bank(vectors: Vectors, y: npt.NDArray[np.int64], labels: list[str]) -> Vectors:
    """In-scope examples kept for the nearest-neighbour score: at most BANK_PER_CLASS per intent.

    Scanning every training vector is memory-bound (15 MB for BANKING77: ~4 ms a message on
    this machine); a class-balanced sample keeps the score and costs a fraction of that.
    """
    oos = labels.index(OOS) if OOS in labels else -1
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for k in range(len(labels)):
        if k == oos:
            continue
        rows = np.flatnonzero(y == k)
        keep += sorted(rng.choice(rows, size=min(len(rows), BANK_PER_CLASS), replace=False).tolist())
    return np.ascontiguousarray(vectors[keep], dtype=np.float32)


def _choose_threshold(score: Floats, pred: list[str], gold: Sequence[str]) -> float:
    """The threshold that maximises (weighted) accuracy on held-out rows, `oos` counted as a label."""
    gold_a = np.asarray(gold)
    pred_a = np.asarray(pred)
    if not (gold_a == OOS).any():
        # No out-of-scope examples to learn from: reject only the least certain 0.5%
        # of in-scope rows, which are mostly the wrong ones anyway.
        return float(np.quantile(score, 0.005))
    # Out-of-scope rows count as at least OOS_MIN_SHARE of the weight: labelled sets hold few of
    # them (CLINC150's train: 0.7%) while real traffic holds many more (CLINC150's test: 18%).
    n_oos = int((gold_a == OOS).sum())
    share = max(n_oos / len(gold_a), OOS_MIN_SHARE)
    weight = np.where(gold_a == OOS, share / n_oos, (1 - share) / max(len(gold_a) - n_oos, 1))
    best, best_acc = 0.0, -1.0
    for th in np.unique(np.quantile(score, np.linspace(0, 0.5, 201))):
        final = np.where((pred_a == OOS) | (score < th), OOS, pred_a)
        acc = float((weight * (final == gold_a)).sum())
        if acc > best_acc:
            best, best_acc = float(th), acc
    return best


class IntentClassifier:
    """The embedded default `IntentModel`."""

    def __init__(
        self, core: _Core, threshold: float, embedder: Embedder | None = None, vectors: str | None = None
    ):
        self.core = core
        self.threshold = threshold
        self.labels = core.labels
        self._embedder = embedder
        self.vectors = vectors  # the training vectors' `MiniLMEmbedder.version`; None: unknown

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def features(self, texts: Sequence[str]) -> Any:
        """The n-gram features of `texts`, for `predict(texts, vectors, features)`. Pure Python and
        no vectors needed: `caredesk.ai.signals.analyze` works them out while the texts are embedded."""
        return self.core.ngrams.transform(texts)

    def predict(
        self, texts: Sequence[str], vectors: Vectors | None = None, features: Any = None
    ) -> list[IntentPrediction]:
        if not texts:
            return []
        if vectors is None:
            vectors = self.embedder.embed(texts)
        proba, score = self.core.scores(texts, vectors, features)
        out = []
        for i, text in enumerate(texts):
            best = int(proba[i].argmax())
            label = self.labels[best]
            oos = label == OOS or bool(score[i] < self.threshold)
            if self.core.oos_index >= 0 and label == OOS:
                confidence = float(proba[i, best])
            else:
                confidence = float(proba[i, best]) if not oos else float(1.0 - proba[i, best])
            out.append(IntentPrediction(text, OOS if oos else label, round(confidence, 4), oos))
        return out

    # -- training -----------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        valid: tuple[Sequence[str], Sequence[str]] | None = None,
        embedder: Embedder | None = None,
        progress: Progress | None = None,
        seed: int = 0,
    ) -> IntentClassifier:
        say = progress or (lambda _m: None)
        if len(texts) != len(labels) or not texts:
            raise ValueError("need at least one labelled example")
        names = sorted(set(labels))
        if len([n for n in names if n != OOS]) < 2:
            raise ValueError("need examples of at least two intents (besides 'oos')")
        index = {n: i for i, n in enumerate(names)}
        y = np.array([index[lab] for lab in labels], dtype=np.int64)
        emb = embedder or get_embedder()
        say(f"embedding {len(texts)} examples over {len(names)} labels")
        vectors = emb.embed(texts)

        if valid is not None:
            held_texts, held_gold = list(valid[0]), list(valid[1])
            say("fitting")
            core = _Core.fit(texts, y, names, vectors)
            held_vecs = emb.embed(held_texts)
        else:
            # Hold out 15% (stratified) to choose the out-of-scope threshold, then refit on all.
            rng = np.random.default_rng(seed)
            held = np.zeros(len(texts), dtype=bool)
            for k in range(len(names)):
                rows = np.flatnonzero(y == k)
                if len(rows) >= 4:
                    held[rng.choice(rows, size=max(1, round(0.15 * len(rows))), replace=False)] = True
            keep = ~held
            say(f"calibrating the out-of-scope threshold on {int(held.sum())} held-out examples")
            core = _Core.fit(
                [t for t, h in zip(texts, keep, strict=True) if h], y[keep], names, vectors[keep]
            )
            held_texts = [t for t, h in zip(texts, held, strict=True) if h]
            held_gold = [names[k] for k in y[held]]
            held_vecs = vectors[held]
        threshold = 0.0
        if held_texts:
            proba, score = core.scores(held_texts, held_vecs)
            threshold = _choose_threshold(score, [names[int(k)] for k in proba.argmax(axis=1)], held_gold)
        if valid is None:
            say("fitting on all examples")
            core = _Core.fit(texts, y, names, vectors)
        say(f"done: {len(names)} labels, out-of-scope threshold {threshold:.3f}")
        return cls(core, threshold, emb, getattr(emb, "version", None))

    # -- persistence --------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "labels": self.labels,
            "threshold": self.threshold,
            "ngram_weight": NGRAM_WEIGHT,
            "vectors": self.vectors,
        }
        (path / "meta.json").write_text(json.dumps(meta, indent=1))
        np.savez(
            path / "weights.npz",
            emb_coef=self.core.emb.coef,
            emb_intercept=self.core.emb.intercept,
            ngram_coef=self.core.ngram.coef,
            ngram_intercept=self.core.ngram.intercept,
            bank=self.core.bank,
        )
        with (path / "vectorizers.pkl").open("wb") as fh:
            pickle.dump(self.core.vecs, fh)

    @classmethod
    def load(cls, folder: str | Path, embedder: Embedder | None = None) -> IntentClassifier:
        path = Path(folder)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            raise ModelDirError(
                f"{path} is not an intent model folder (no meta.json); train one with `nlu train`"
            )
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise ModelDirError(f"{meta_file} is not valid JSON: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ModelDirError(f"{path} holds format {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            w = np.load(path / "weights.npz")
            with (path / "vectorizers.pkl").open("rb") as fh:
                # Only folders written by `save` are loaded; never point this at untrusted files.
                vecs = pickle.load(fh)  # noqa: S301
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            raise ModelDirError(f"{path} is incomplete or damaged: {exc}") from exc
        core = _Core(
            list(meta["labels"]),
            _Linear(w["emb_coef"], w["emb_intercept"]),
            _Linear(w["ngram_coef"], w["ngram_intercept"]),
            vecs,
            w["bank"],
        )
        trained = meta.get("vectors", UNRECORDED_VECTORS)  # null: trained on unknown vectors
        serving = getattr(embedder, "version", None) if embedder is not None else vectors_version()
        if trained is not None and serving is not None and trained != serving:
            log.warning(
                "intent model %s was trained on %s vectors but this process makes %s vectors; it "
                "still works (accuracy moved by under 0.1 point when measured), but retrain it "
                "(`caredesk nlu train`) or set CAREDESK_AI_PRECISION to match",
                path,
                trained,
                serving,
            )
        return cls(core, float(meta["threshold"]), embedder, trained)


# Loaded models are shared: loading costs a few hundred ms and tens of MB each.
_loaded: dict[tuple[str, float], IntentClassifier] = {}


def load_intent_model(folder: str | Path) -> IntentClassifier:
    """Load (once per folder and version on disk) a model saved by `IntentClassifier.save`."""
    path = Path(folder).resolve()
    stamp = (path / "meta.json").stat().st_mtime if (path / "meta.json").exists() else 0.0
    key = (str(path), stamp)
    if key not in _loaded:
        _loaded[key] = IntentClassifier.load(path)
    return _loaded[key]


def train_intent_model(
    texts: Sequence[str],
    labels: Sequence[str],
    valid: tuple[Sequence[str], Sequence[str]] | None = None,
    progress: Progress | None = None,
) -> IntentClassifier:
    return IntentClassifier.train(texts, labels, valid=valid, progress=progress)
