from __future__ import annotations

import numpy as np
import pytest

from caredesk.knowledge.search import KnowledgeBase, split_passages

ARTICLES = [
    (
        "returns",
        "Returns and refunds",
        "You can return any item within 30 days of delivery for a full refund.\n\n"
        "Refunds go back to the original payment method within 5 working days of the return arriving.",
    ),
    (
        "password",
        "Resetting your password",
        "Click 'Forgot password' on the login page and we will email you a "
        "reset link. The link is valid for 30 minutes.",
    ),
    (
        "shipping",
        "Delivery times",
        "Standard delivery takes 3-5 working days. Express delivery arrives the next "
        "working day if you order before 2pm. We ship to the UK and Ireland.",
    ),
    ("sku", "Warranty for the ZX-400 kettle", "The ZX-400 kettle has a two year warranty covering faults."),
]


@pytest.fixture(scope="module")
def kb(embedder) -> KnowledgeBase:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase(":memory:", embedder=embedder)
    for article_id, title, body in ARTICLES:
        kb.add_article(article_id, title, body)
    return kb


@pytest.mark.parametrize(
    ("query", "article"),
    [
        ("how do I get my money back", "returns"),
        ("I forgot my login details", "password"),
        ("how long until my parcel arrives", "shipping"),
        ("ZX-400 guarantee", "sku"),
    ],
)
def test_hybrid_search_finds_the_article_and_passage(kb: KnowledgeBase, query: str, article: str) -> None:
    answer = kb.search(query)
    assert answer.found and answer.best is not None
    assert answer.best.article_id == article
    body = dict((a, b) for a, _t, b in ARTICLES)[article]
    assert " ".join(answer.best.passage.split()) in " ".join(body.split())


@pytest.mark.parametrize(
    "query", ["what is the capital of France", "who won the football last night", "asdf qwerty"]
)
def test_below_the_floor_it_says_it_does_not_know(kb: KnowledgeBase, query: str) -> None:
    answer = kb.search(query)
    assert answer.found is False and answer.hits == []
    assert "don't know" in answer.message


def test_replace_and_remove_articles(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kb = KnowledgeBase(tmp_path / "kb.sqlite", embedder=embedder)
    kb.add_article("a", "Opening hours", "We are open 9am to 5pm, Monday to Friday.")
    assert kb.search("when are you open").found
    kb.add_article("a", "Opening hours", "We are open 24 hours a day, every day.")
    assert "24 hours" in kb.search("when are you open").message
    kb.remove_article("a")
    assert kb.search("when are you open").found is False
    assert kb.articles() == []
    kb.close()


def test_split_passages_keeps_paragraphs_together() -> None:
    body = "First para.\n\nSecond para.\n\n" + "word " * 300
    parts = split_passages(body, max_words=50)
    assert parts[0].startswith("First para.") and "Second para." in parts[0]
    assert all(len(p.split()) <= 50 for p in parts)


def test_an_index_built_with_other_vectors_is_embedded_again_once(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An index from before int8 became the default (fp32 passage vectors) is re-embedded on first use,
    so that queries (now int8) compare with passages of the same kind."""
    from caredesk.ai.embedder import MiniLMEmbedder

    fp32 = MiniLMEmbedder(precision="fp32")
    assert fp32.version != embedder.version
    path = tmp_path / "kb.sqlite"
    old = KnowledgeBase(path, embedder=fp32)
    for article_id, title, body in ARTICLES:
        old.add_article(article_id, title, body)
    old.db.close()

    kb = KnowledgeBase(path, embedder=embedder)
    assert kb.search("how do I get my money back").hits[0].article_id == "returns"
    stored = np.stack(
        [
            np.frombuffer(v, dtype=np.float32)
            for (v,) in kb.db.execute("SELECT vector FROM passages ORDER BY id")
        ]
    )
    texts = [
        f"{t}. {p}"
        for (t, p) in kb.db.execute(
            "SELECT a.title, p.text FROM passages p JOIN articles a ON a.id = p.article_id ORDER BY p.id"
        )
    ]
    assert np.allclose(stored, embedder.embed(texts), atol=1e-6)
    assert kb.db.execute("SELECT value FROM index_meta WHERE key = 'vectors'").fetchone() == (
        embedder.version,
    )
