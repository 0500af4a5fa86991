"""AI tests: one embedder for the whole session, small data subsets, no wall-clock asserts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Keep the exported ONNX file out of the user's home during tests, unless one is given.
    if "CAREDESK_MODEL_CACHE" not in os.environ:
        os.environ["CAREDESK_MODEL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
        yield
        del os.environ["CAREDESK_MODEL_CACHE"]
    else:
        yield


@pytest.fixture(scope="session")
def embedder(_model_cache: None):  # type: ignore[no-untyped-def]
    from caredesk.ai.embedder import get_embedder

    return get_embedder()


def read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


@pytest.fixture(scope="session")
def banking_subset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """20 BANKING77 intents x 10 training examples + 10 CLINC150 out-of-scope rows; a test file likewise."""
    rows = read_jsonl(SHARED_DATA / "banking77" / "train.jsonl")
    test = read_jsonl(SHARED_DATA / "banking77" / "test.jsonl")
    labels = sorted({r["label"] for r in rows})
    keep = labels[:20]
    clinc_oos = [r for r in read_jsonl(SHARED_DATA / "clinc150" / "train.jsonl") if r["label"] == "oos"]
    clinc_oos_valid = [r for r in read_jsonl(SHARED_DATA / "clinc150" / "valid.jsonl") if r["label"] == "oos"]
    train_rows: list[dict[str, str]] = []
    for label in keep:
        train_rows += [r for r in rows if r["label"] == label][:10]
    train_rows += clinc_oos[:10]
    test_rows = [r for r in test if r["label"] in keep][:120] + clinc_oos_valid[:30]
    folder = tmp_path_factory.mktemp("banking")
    out = {"train": folder / "train.jsonl", "test": folder / "test.jsonl"}
    for name, data in (("train", train_rows), ("test", test_rows)):
        out[name].write_text("".join(json.dumps(r) + "\n" for r in data))
    return out


@pytest.fixture(scope="session")
def trained_model(
    banking_subset: dict[str, Path], embedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:  # type: ignore[no-untyped-def]
    from caredesk.ai.intent import IntentClassifier

    rows = read_jsonl(banking_subset["train"])
    model = IntentClassifier.train([r["text"] for r in rows], [r["label"] for r in rows], embedder=embedder)
    folder = tmp_path_factory.mktemp("model") / "intent"
    model.save(folder)
    return folder
