from __future__ import annotations

import numpy as np

from caredesk.ai.embedder import MiniLMEmbedder
from caredesk.ai.protocols import Embedder


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


def test_onnx_and_torch_backends_agree(embedder: MiniLMEmbedder) -> None:
    texts = ["Where is my refund for order 1234?", "hi", "a much longer message " * 20]
    torch_vecs = MiniLMEmbedder("torch").embed(texts)
    onnx_vecs = MiniLMEmbedder("onnx").embed(texts)
    assert (np.sum(torch_vecs * onnx_vecs, axis=1) > 0.9999).all()


def test_several_batches_in_parallel_give_each_text_its_own_vector(embedder: MiniLMEmbedder) -> None:
    # Enough texts of varied lengths for several batches: they are length-sorted, split across
    # the worker threads (on the ONNX backend) and put back in input order.
    texts = [f"order {i} " + "has not arrived yet " * (i % 7) for i in range(150)]
    together = embedder.embed(texts)
    assert together.shape == (150, 384)
    for i in (0, 1, 63, 64, 65, 100, 149):
        assert np.allclose(embedder.embed([texts[i]])[0], together[i], atol=1e-5)
    assert np.allclose(embedder.embed(texts[:70]), together[:70], atol=1e-5)
