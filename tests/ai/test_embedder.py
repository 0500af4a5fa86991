from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from caredesk.ai.embedder import VECTORS, MiniLMEmbedder, vectors_version
from caredesk.ai.intent import IntentClassifier
from caredesk.ai.protocols import Embedder

from .conftest import SHARED_DATA


def test_vectors_are_unit_length_ordered_and_meaningful(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    texts = ["I lost my card", "my card is missing", "what time do you open?", ""]
    v = embedder.embed(texts)
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    # Batching and length-sorting must not change a text's vector.
    assert np.allclose(embedder.embed([texts[2]])[0], v[2], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_int8_is_the_default_and_fp32_stays_selectable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREDESK_AI_PRECISION", raising=False)
    int8 = MiniLMEmbedder("onnx")
    assert int8.precision == "int8" and int8.version == VECTORS["int8"] == vectors_version()
    monkeypatch.setenv("CAREDESK_AI_PRECISION", "fp32")
    assert vectors_version() == VECTORS["fp32"]
    fp32 = MiniLMEmbedder("onnx")
    assert fp32.precision == "fp32" and fp32.version == VECTORS["fp32"] != int8.version
    assert MiniLMEmbedder("torch").version == VECTORS["fp32"]  # torch is the fp32 reference
    monkeypatch.setenv("CAREDESK_AI_PRECISION", "int4")
    with pytest.raises(ValueError, match="CAREDESK_AI_PRECISION"):
        MiniLMEmbedder("onnx")


def test_onnx_and_torch_backends_agree(embedder: MiniLMEmbedder) -> None:
    texts = ["Where is my refund for order 1234?", "hi", "a much longer message " * 20]
    torch_vecs = MiniLMEmbedder("torch").embed(texts)
    fp32_vecs = MiniLMEmbedder("onnx", "fp32").embed(texts)
    assert (np.sum(torch_vecs * fp32_vecs, axis=1) > 0.9999).all()
    int8_vecs = MiniLMEmbedder("onnx", "int8").embed(texts)
    assert (np.sum(torch_vecs * int8_vecs, axis=1) > 0.99).all()


def test_int8_vectors_stay_close_to_fp32() -> None:
    # A sample of BANKING77 test messages (docs/benchmarks.md has all 3,080: mean 0.998).
    rows = [json.loads(line) for line in (SHARED_DATA / "banking77" / "test.jsonl").open()]
    texts = [r["text"] for r in rows[::40]]
    int8 = MiniLMEmbedder("onnx", "int8").embed(texts)
    cos = np.sum(int8 * MiniLMEmbedder("onnx", "fp32").embed(texts), axis=1)
    assert cos.mean() >= 0.995 and cos.min() >= 0.98


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_vector_does_not_depend_on_the_rest_of_its_batch(precision: str) -> None:
    embedder = MiniLMEmbedder("onnx", precision)
    # Int8 activations are scaled per token, never per batch: odd messages with large
    # activations, or a short one, in the same length-sorted batch must not move the others'
    # vectors. (With ONNX Runtime's quantize_dynamic, one scale per batch, they moved by 0.02-0.03.)
    texts = ["my card payment was declined", "hi", "How do I top up with a cheque?"]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    neighbours = [
        ["€€€ ¥¥¥ !!!! ####", "URGENT!!! CALL 0800 123 456 NOW"],
        ["a much longer message about a refund that never arrived " * 8, "ok"],
        [f"order {i} has not arrived yet" for i in range(70)],  # several batches, in parallel
    ]
    for others in neighbours:
        for batch in (texts + others, others + texts[::-1]):
            got = embedder.embed(batch)
            for i, text in enumerate(texts):
                assert np.allclose(got[batch.index(text)], alone[i], atol=1e-5)


def test_several_batches_in_parallel_give_each_text_its_own_vector(embedder: MiniLMEmbedder) -> None:
    # Enough texts of varied lengths for several batches: they are length-sorted, split across
    # the worker threads (on the ONNX backend) and put back in input order.
    texts = [f"order {i} " + "has not arrived yet " * (i % 7) for i in range(150)]
    together = embedder.embed(texts)
    assert together.shape == (150, 384)
    for i in (0, 1, 63, 64, 65, 100, 149):
        assert np.allclose(embedder.embed([texts[i]])[0], together[i], atol=1e-5)
    assert np.allclose(embedder.embed(texts[:70]), together[:70], atol=1e-5)


_DROP = object()


def _model_copy(trained_model: Path, tmp_path: Path, **meta_changes: object) -> Path:
    folder = tmp_path / "intent"
    shutil.copytree(trained_model, folder)
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in meta_changes.items():
        if value is _DROP:
            meta.pop(key)
        else:
            meta[key] = value
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_an_intent_model_records_the_vectors_it_was_trained_on(
    trained_model: Path, embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    assert json.loads((trained_model / "meta.json").read_text())["vectors"] == embedder.version
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.intent"):
        model = IntentClassifier.load(trained_model, embedder)
    assert model.vectors == embedder.version and not caplog.records


def test_a_model_from_before_int8_warns_once_loaded_and_still_predicts(
    trained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saved before vectors were recorded: trained on fp32 vectors.
    old = _model_copy(trained_model, tmp_path, vectors=_DROP)
    monkeypatch.delenv("CAREDESK_AI_PRECISION", raising=False)
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.intent"):
        model = IntentClassifier.load(old)
    assert model.vectors == VECTORS["fp32"]
    [record] = caplog.records
    message = record.getMessage()
    assert VECTORS["fp32"] in message and VECTORS["int8"] in message and "nlu train" in message
    [pred] = model.predict(["I lost my card"])
    assert pred.label and 0.0 <= pred.confidence <= 1.0
    caplog.clear()
    monkeypatch.setenv("CAREDESK_AI_PRECISION", "fp32")  # served the vectors it was trained on
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.intent"):
        IntentClassifier.load(old)
    assert not caplog.records


def test_a_model_trained_on_unknown_vectors_is_not_checked(
    trained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = _model_copy(trained_model, tmp_path, vectors=None)  # e.g. a custom embedder
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.intent"):
        assert IntentClassifier.load(unknown).vectors is None
    assert not caplog.records
