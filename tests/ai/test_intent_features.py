"""The intent model's own n-gram featuriser gives scikit-learn's TF-IDF features exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import hstack

from caredesk.ai.intent import _NGrams, _vectorizers

TRAIN = [
    "I still have not received my new card",
    "where is my card? it has been two weeks",
    "how do I top up with a cheque",
    "my top-up was declined twice!!",
    "can I change my PIN at an ATM",
    "the ATM kept my card",
    "Je voudrais changer mon code",
    "cancel my transfer please",
]
TEXTS = [
    "my card has not arrived",
    "",
    "   ",
    "zzzz qqqq",  # nothing in the vocabulary
    "ATM ATM ATM kept kept my card card card",  # repeated features (sublinear tf)
    "Ünïcödé café naïve — déjà vu",
    "top-up\tdeclined\n\nagain",
    "a",
]


@pytest.fixture(scope="module")
def fitted() -> tuple[object, object]:
    chars, words = _vectorizers()
    chars.fit(TRAIN)
    words.fit(TRAIN)
    return chars, words


def test_features_match_scikit_learn_batch_and_one_by_one(fitted: tuple[object, object]) -> None:
    ngrams = _NGrams(fitted)
    expected = hstack([v.transform(TEXTS) for v in fitted]).tocsr()  # type: ignore[attr-defined]
    got = ngrams.transform(TEXTS)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert abs(got - expected).max() < 1e-6
    assert got.nnz == expected.nnz
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    for i, text in enumerate(TEXTS):
        one = ngrams.transform([text])
        np.testing.assert_allclose(one.toarray()[0], expected[i].toarray()[0], atol=1e-6)


def test_rows_are_unit_length_per_vectorizer(fitted: tuple[object, object]) -> None:
    ngrams = _NGrams(fitted)
    width = len(fitted[0].vocabulary_)  # type: ignore[attr-defined]
    dense = ngrams.transform(TRAIN).toarray()
    np.testing.assert_allclose(np.linalg.norm(dense[:, :width], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dense[:, width:], axis=1), 1.0, rtol=1e-5)


def test_empty_batch(fitted: tuple[object, object]) -> None:
    assert _NGrams(fitted).transform([]).shape == (0, _NGrams(fitted).width)
