"""The account's intent model, trained from the business's own labelled examples.

Models are stored per installation and account under `<data_dir>/models/<account id>/intent`, the
same place the AI pipeline step reads (`caredesk.ai.signals.models_root`), so its signals carry the
intent too; the conductor also asks the model itself (`predict_intent`) when the step left none. `ensure_intent_model` trains from a YAML file of `intent: [examples...]` (the demo shop ships
`caredesk/demo/intents.yaml`) and stores a fingerprint of the examples next to the model: trained once,
again only when the examples change. Loaded models are cached by `caredesk.ai.intent.load_intent_model`.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import yaml

DEMO_INTENTS = Path(__file__).resolve().parent.parent / "demo" / "intents.yaml"
FINGERPRINT = "examples.sha256"
_lock = threading.Lock()


def intent_folder(data_dir: Path, account_id: int) -> Path:
    return Path(data_dir) / "models" / str(int(account_id)) / "intent"


def predict_intent(data_dir: Path, account_id: int, text: str) -> tuple[str, float] | None:
    """(intent, confidence) from the account's model; None when it has none. CPU-bound: call in a thread."""
    folder = intent_folder(data_dir, account_id)
    if not (folder / "meta.json").is_file():
        return None
    from caredesk.ai.intent import load_intent_model

    p = load_intent_model(folder).predict([text])[0]
    return p.label, p.confidence


def load_examples(source: str) -> tuple[list[str], list[str]]:
    """(texts, labels) from `intent: [example, ...]` YAML."""
    data = yaml.safe_load(source) or {}
    if not isinstance(data, dict):
        raise ValueError("intent examples must be a mapping of intent name to a list of examples")
    texts: list[str] = []
    labels: list[str] = []
    for intent, rows in data.items():
        for row in rows or []:
            if isinstance(row, str) and row.strip():
                texts.append(row.strip())
                labels.append(str(intent))
    return texts, labels


def ensure_intent_model(
    data_dir: Path, account_id: int, examples: Path = DEMO_INTENTS, *, force: bool = False
) -> bool:
    """Train and store the account's intent model unless an up-to-date one is there. True if trained."""
    source = examples.read_text(encoding="utf-8")
    digest = hashlib.sha256(source.encode()).hexdigest()
    folder = intent_folder(data_dir, account_id)
    with _lock:
        stamp = folder / FINGERPRINT
        fresh = (folder / "meta.json").is_file() and stamp.is_file() and stamp.read_text().strip() == digest
        if fresh and not force:
            return False
        from caredesk.ai.intent import train_intent_model

        texts, labels = load_examples(source)
        model = train_intent_model(texts, labels)
        model.save(folder)
        stamp.write_text(digest + "\n")
        return True
