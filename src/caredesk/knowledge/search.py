"""Knowledge retrieval: hybrid search over an account's knowledge-base articles.

Articles are cut into passages (paragraphs, merged up to ~120 words). Each query
runs two searches and fuses them by reciprocal rank (RRF, k=60):
- BM25 over the passages with SQLite FTS5 (exact words: product names, codes);
- cosine similarity of MiniLM vectors (meaning: "money back" finds "refund").
The answer is the best passage and its article. Below a floor of semantic
similarity, and with no keyword match to back it, the answer is "I don't know":
a confident wrong article is worse than handing over to a person.

The index is a SQLite file per account (or ":memory:"), independent of the main
database engine, so it works the same with PostgreSQL in scaled deployments.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caredesk.ai.embedder import get_embedder
from caredesk.ai.protocols import Embedder

RRF_K = 60
FLOOR = 0.42  # cosine similarity of the best passage under which we say we don't know
FLOOR_WITH_KEYWORDS = 0.30  # a BM25 hit for the same passage lowers the bar
PASSAGE_WORDS = 120

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, url TEXT);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY, article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    text TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts
    USING fts5(title, text, content='', tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Hit:
    article_id: str
    title: str
    passage: str
    url: str | None
    similarity: float  # cosine, query vs passage
    keyword_rank: int | None  # 1-based BM25 rank, None when no keyword match
    score: float  # fused RRF score


@dataclass(frozen=True, slots=True)
class KnowledgeAnswer:
    query: str
    found: bool
    hits: list[Hit] = field(default_factory=list)  # best first; empty when not found

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    @property
    def message(self) -> str:
        if self.best is None:
            return "I don't know: no article in the knowledge base answers this."
        return self.best.passage


def split_passages(body: str, max_words: int = PASSAGE_WORDS) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n(?=[-*•] )", body) if p.strip()]
    passages: list[str] = []
    current: list[str] = []
    for para in paragraphs:
        words = para.split()
        if current and len(" ".join(current).split()) + len(words) > max_words:
            passages.append("\n".join(current))
            current = []
        while len(words) > max_words:  # a very long paragraph: cut it
            passages.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if words:
            current.append(" ".join(words))
    if current:
        passages.append("\n".join(current))
    return passages


def _fts_query(text: str) -> str:
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1]
    return " OR ".join(f'"{w}"' for w in words)


class KnowledgeBase:
    """One account's articles, indexed for hybrid search."""

    def __init__(self, path: str | Path = ":memory:", embedder: Embedder | None = None) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(_SCHEMA)
        self._embedder = embedder
        self._lock = threading.Lock()
        self._matrix: np.ndarray | None = None  # cached passage vectors
        self._ids: list[int] = []

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def add_article(self, article_id: str, title: str, body: str, url: str | None = None) -> int:
        """Add or replace an article; returns the number of passages indexed."""
        passages = split_passages(body) or [title]
        vectors = self.embedder.embed([f"{title}. {p}" for p in passages])
        with self._lock:
            if self._matrix is None:
                self._reembed_if_stale()  # before adding this article's vectors under the current version
        with self._lock, self.db:
            self._delete(article_id)
            self.db.execute("INSERT INTO articles VALUES (?, ?, ?, ?)", (article_id, title, body, url))
            for text, vec in zip(passages, vectors, strict=True):
                cur = self.db.execute(
                    "INSERT INTO passages (article_id, text, vector) VALUES (?, ?, ?)",
                    (article_id, text, vec.astype(np.float32).tobytes()),
                )
                self.db.execute(
                    "INSERT INTO passages_fts (rowid, title, text) VALUES (?, ?, ?)",
                    (cur.lastrowid, title, text),
                )
            self._matrix = None
        return len(passages)

    def remove_article(self, article_id: str) -> None:
        with self._lock, self.db:
            self._delete(article_id)
            self._matrix = None

    def _delete(self, article_id: str) -> None:
        rows = self.db.execute(
            "SELECT p.id, a.title, p.text FROM passages p JOIN articles a ON a.id = p.article_id "
            "WHERE p.article_id = ?",
            (article_id,),
        ).fetchall()
        for pid, title, text in rows:
            # contentless FTS5 tables delete by repeating the indexed values
            self.db.execute(
                "INSERT INTO passages_fts (passages_fts, rowid, title, text) VALUES ('delete', ?, ?, ?)",
                (pid, title, text),
            )
        self.db.execute("DELETE FROM passages WHERE article_id = ?", (article_id,))
        self.db.execute("DELETE FROM articles WHERE id = ?", (article_id,))

    def _vectors_version(self) -> str | None:
        version = getattr(self.embedder, "version", None)
        return version if isinstance(version, str) else None

    def _reembed_if_stale(self) -> None:
        """Passages embedded by another kind of vectors (e.g. fp32 before int8 became the default) are
        embedded again, once: a query's vector must be comparable with the passages'."""
        version = self._vectors_version()
        if version is None:
            return
        row = self.db.execute("SELECT value FROM index_meta WHERE key = 'vectors'").fetchone()
        if row is not None and row[0] == version:
            return
        rows = self.db.execute(
            "SELECT p.id, a.title, p.text FROM passages p JOIN articles a ON a.id = p.article_id ORDER BY p.id"
        ).fetchall()
        vectors = self.embedder.embed([f"{title}. {text}" for _id, title, text in rows])
        with self.db:
            for (pid, _title, _text), vec in zip(rows, vectors, strict=True):
                self.db.execute(
                    "UPDATE passages SET vector = ? WHERE id = ?", (vec.astype(np.float32).tobytes(), pid)
                )
            self.db.execute("INSERT OR REPLACE INTO index_meta VALUES ('vectors', ?)", (version,))

    def _vectors(self) -> tuple[list[int], np.ndarray]:
        if self._matrix is None:
            self._reembed_if_stale()
            rows = self.db.execute("SELECT id, vector FROM passages ORDER BY id").fetchall()
            self._ids = [r[0] for r in rows]
            self._matrix = (
                np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                if rows
                else np.zeros((0, self.embedder.dim), dtype=np.float32)
            )
        return self._ids, self._matrix

    def search(self, query: str, k: int = 3) -> KnowledgeAnswer:
        with self._lock:
            ids, matrix = self._vectors()
            if not ids or not query.strip():
                return KnowledgeAnswer(query, False)
            sims = matrix @ self.embedder.embed([query])[0]
            dense_order = np.argsort(-sims)[:50]
            dense_rank = {ids[int(i)]: r + 1 for r, i in enumerate(dense_order)}
            similarity = {ids[i]: float(sims[i]) for i in range(len(ids))}
            fts = _fts_query(query)
            keyword_rank: dict[int, int] = {}
            if fts:
                rows = self.db.execute(
                    "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? "
                    "ORDER BY bm25(passages_fts) LIMIT 50",
                    (fts,),
                ).fetchall()
                keyword_rank = {row[0]: r + 1 for r, row in enumerate(rows)}
            fused: dict[int, float] = {}
            for ranks in (dense_rank, keyword_rank):
                for pid, rank in ranks.items():
                    fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank)
            best = sorted(fused, key=lambda pid: -fused[pid])[:k]
            hits = []
            for pid in best:
                sim = similarity.get(pid, 0.0)
                kw = keyword_rank.get(pid)
                if sim < (FLOOR_WITH_KEYWORDS if kw is not None and kw <= 3 else FLOOR):
                    continue  # under the floor: not an answer
                article_id, text, title, url = self.db.execute(
                    "SELECT p.article_id, p.text, a.title, a.url "
                    "FROM passages p JOIN articles a ON a.id = p.article_id WHERE p.id = ?",
                    (pid,),
                ).fetchone()
                hits.append(Hit(article_id, title, text, url, round(sim, 4), kw, round(fused[pid], 5)))
            return KnowledgeAnswer(query, bool(hits), hits)

    def articles(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT id, title FROM articles ORDER BY id")]

    def close(self) -> None:
        self.db.close()


_bases: dict[str, KnowledgeBase] = {}
_bases_lock = threading.Lock()


def open_knowledge_base(path: str | Path) -> KnowledgeBase:
    """The shared `KnowledgeBase` for an index file (one per account), opened once per process."""
    key = str(Path(path).resolve()) if str(path) != ":memory:" else f":memory:{len(_bases)}"
    with _bases_lock:
        if key not in _bases:
            if key.startswith(":memory:"):
                _bases[key] = KnowledgeBase(":memory:")
            else:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                _bases[key] = KnowledgeBase(key)
        return _bases[key]


def search_knowledge(kb: KnowledgeBase, query: str, k: int = 3) -> KnowledgeAnswer:
    return kb.search(query, k)


def add_articles(kb: KnowledgeBase, articles: Sequence[tuple[str, str, str]]) -> int:
    """Bulk add (id, title, body) articles; returns passages indexed."""
    return sum(kb.add_article(a, t, b) for a, t, b in articles)
