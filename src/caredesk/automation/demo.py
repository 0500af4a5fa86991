"""Installs the demo shop's connector secret and actions on an account (used by `caredesk demo` and tests)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from caredesk.automation.config import active_source, save_config
from caredesk.automation.secrets import set_secret
from caredesk.demo.shop_api import DEMO_API_KEY

DEMO_ACTIONS = Path(__file__).resolve().parent.parent / "demo" / "actions.yaml"


def install_demo_automation(session: Session, account_id: int, secret_key: str) -> int:
    """Idempotent: an account that already has a configuration keeps it."""
    found = active_source(session, account_id)
    if found is not None:
        return found[0]
    set_secret(session, account_id, secret_key, "shop_api_key", DEMO_API_KEY)
    return save_config(session, account_id, DEMO_ACTIONS.read_text(encoding="utf-8"), "demo")


def install_demo_intelligence(data_dir: Path, account_id: int) -> dict[str, object]:
    """The demo shop's intent model (trained from demo/intents.yaml unless up to date) and its help
    articles (demo/articles.yaml), both under `data_dir`. Takes seconds the first time (the encoder loads)."""
    from caredesk.automation.intents import ensure_intent_model
    from caredesk.automation.knowledge import install_articles

    trained = ensure_intent_model(data_dir, account_id)
    articles = install_articles(data_dir, account_id)
    return {"intent_model_trained": trained, "articles": articles}
