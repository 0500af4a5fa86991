"""Knowledge answers for the bot: a question no action handles is looked up in the account's help
articles (hybrid search, caredesk.knowledge.search). The bot answers with the passage and a link to the
article, or says plainly that it does not know (below the search's similarity floor) and offers a person.

Each account's index is a SQLite file under `<data_dir>/knowledge/<account id>.sqlite`, opened once per
process. The demo shop's articles are `caredesk/demo/articles.yaml`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from caredesk.knowledge.search import KnowledgeAnswer, KnowledgeBase, open_knowledge_base

DEMO_ARTICLES = Path(__file__).resolve().parent.parent / "demo" / "articles.yaml"
DONT_KNOW = (
    "I'm sorry, I don't know the answer to that, and I'd rather not guess. "
    "Would you like me to bring in a person? (yes/no)"
)


def index_path(data_dir: Path, account_id: int) -> Path:
    return Path(data_dir) / "knowledge" / f"{int(account_id)}.sqlite"


def knowledge_base(services: Any, account_id: int) -> KnowledgeBase | None:
    """The account's knowledge base, or None when it has no articles (nothing is loaded then)."""
    configured = services.extras.get("knowledge_bases") if services is not None else None
    if configured is not None:
        kb = configured.get(account_id)
        return kb if kb is not None and kb.articles() else None
    path = index_path(services.settings.data_dir, account_id)
    if not path.is_file():
        return None
    kb = open_knowledge_base(path)
    return kb if kb.articles() else None


def install_articles(data_dir: Path, account_id: int, source: Path = DEMO_ARTICLES) -> int:
    """Index the articles of a YAML list (id, title, url, body); idempotent. Returns the article count."""
    rows = yaml.safe_load(source.read_text(encoding="utf-8")) or []
    kb = open_knowledge_base(index_path(data_dir, account_id))
    have = {aid for aid, _ in kb.articles()}
    for row in rows:
        if row["id"] not in have:
            kb.add_article(str(row["id"]), str(row["title"]), str(row["body"]), row.get("url"))
    return len(rows)


def answer_text(answer: KnowledgeAnswer) -> str | None:
    """The bot's reply for a found answer: the passage, then the article's title and link."""
    best = answer.best
    if not answer.found or best is None:
        return None
    link = f"{best.title}: {best.url}" if best.url else best.title
    return f"{best.passage.strip()}\n\nMore in our help centre: {link}"
