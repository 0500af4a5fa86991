"""The command-line contract of `caredesk nlu`, `signals` and `coach` (other tools rely on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from caredesk.ai.cli import register

from .conftest import read_jsonl


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


runner = CliRunner()


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_train_writes_a_model_and_reports_progress(
    app: typer.Typer, banking_subset: dict[str, Path], tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["nlu", "train", "--data", str(banking_subset["train"]), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert "embedding" in result.output and "saved model" in result.output
    assert (tmp_path / "m" / "meta.json").is_file()
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert "oos" in meta["labels"] and len(meta["labels"]) == 21


def test_predict_one_line_per_input_in_order(
    app: typer.Typer, trained_model: Path, banking_subset: dict[str, Path]
) -> None:
    rows = read_jsonl(banking_subset["test"])[:40]
    stdin = "".join(json.dumps({"text": r["text"]}) + "\n" for r in rows)
    result = runner.invoke(app, ["nlu", "predict", "--model", str(trained_model)], input=stdin)
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [o["text"] for o in out] == [r["text"] for r in rows]
    for o in out:
        assert set(o) == {"text", "label", "confidence", "out_of_scope"}
        assert 0.0 <= float(o["confidence"]) <= 1.0  # type: ignore[arg-type]
        assert (o["label"] == "oos") == o["out_of_scope"]
    hits = sum(o["label"] == r["label"] for o, r in zip(out, rows, strict=True))
    assert hits >= 30  # 10 examples per intent are enough for most of these


def test_eval_prints_every_figure(
    app: typer.Typer, trained_model: Path, banking_subset: dict[str, Path]
) -> None:
    result = runner.invoke(
        app, ["nlu", "eval", "--model", str(trained_model), "--data", str(banking_subset["test"])]
    )
    assert result.exit_code == 0, result.output
    figures = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    for key in (
        "accuracy",
        "in_scope_accuracy",
        "oos_recall",
        "oos_precision",
        "macro_f1",
        "messages_per_second",
    ):
        assert key in figures
    assert float(figures["accuracy"]) > 0.6
    assert float(figures["oos_recall"]) > 0.3  # out-of-scope rows come from intents never seen


def test_signals_contract(app: typer.Typer) -> None:
    texts = [
        "I want to talk to a human",
        "thanks, all sorted!",
        "WINNER! Txt CLAIM to 81010 for your £1000 prize. T&Cs 18+",
    ]
    result = runner.invoke(app, ["signals"], input="".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [o["text"] for o in out] == texts
    for o in out:
        assert set(o) == {
            "text",
            "language",
            "sentiment",
            "frustration",
            "escalate",
            "escalate_reason",
            "spam",
            "spam_score",
            "slots",
        }
        assert -1.0 <= float(o["sentiment"]) <= 1.0 and 0.0 <= float(o["frustration"]) <= 1.0  # type: ignore[arg-type]
        assert isinstance(o["escalate"], bool) and isinstance(o["spam"], bool)
    assert out[0]["escalate"] is True and out[0]["escalate_reason"] == "human_requested"
    assert out[1]["escalate"] is False and float(out[1]["sentiment"]) > 0  # type: ignore[arg-type]
    assert out[2]["spam"] is True


def test_coach_contract(app: typer.Typer) -> None:
    rows = [
        {"customer": "Order #5521 arrived broken", "reply": "We apologize for any inconvenience."},
        {
            "customer": "Order #5521 arrived broken",
            "reply": "I've sent a replacement for order 5521 today; it arrives Thursday.",
        },
    ]
    result = runner.invoke(app, ["coach"], input="".join(json.dumps(r) + "\n" for r in rows))
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert len(out) == 2
    for o in out:
        assert set(o) == {"scripted", "score", "reasons", "suggestion"}
    assert out[0]["scripted"] is True and out[1]["scripted"] is False


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["signals"], '{"text": "ok"}\nnot json\n', "line 2"),
        (["signals"], '{"text": "ok"}\n{"txt": "x"}\n', "line 2: missing field 'text'"),
        (["signals"], "", "empty"),
        (["signals"], '["a list"]\n', "line 1"),
        (["coach"], '{"customer": "hi"}\n', "line 1: missing field 'reply'"),
        (["signals"], '{"text": 5}\n', "line 1: field 'text' must be a string"),
    ],
)
def test_bad_stdin_names_the_line_and_exits_non_zero(
    app: typer.Typer, args: list[str], stdin: str, needle: str
) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code != 0
    assert needle in result.output
    assert "Traceback" not in result.output


def test_bad_files_and_model_dirs(app: typer.Typer, tmp_path: Path, trained_model: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    result = runner.invoke(app, ["nlu", "train", "--data", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "line 2: missing field 'label'" in result.output

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(app, ["nlu", "train", "--data", str(empty), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "empty" in result.output

    result = runner.invoke(
        app, ["nlu", "train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0 and "no such file" in result.output

    result = runner.invoke(
        app, ["nlu", "predict", "--model", str(tmp_path / "nope")], input='{"text": "hi"}\n'
    )
    assert result.exit_code != 0 and "no such model folder" in result.output

    not_model = tmp_path / "not-a-model"
    not_model.mkdir()
    result = runner.invoke(app, ["nlu", "eval", "--model", str(not_model), "--data", str(bad)])
    assert result.exit_code != 0 and "not an intent model" in result.output

    result = runner.invoke(
        app, ["nlu", "predict", "--model", str(trained_model)], input='{"text": "hi"}\n{oops\n'
    )
    assert result.exit_code != 0 and "line 2" in result.output
    for r in (result,):
        assert "Traceback" not in r.output


def test_single_label_training_data_is_refused(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    result = runner.invoke(app, ["nlu", "train", "--data", str(data), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "at least two intents" in result.output


def test_analyze_adds_the_accounts_intent(
    trained_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from caredesk.ai.signals import analyze

    shutil.copytree(trained_model, tmp_path / "42" / "intent")
    monkeypatch.setenv("CAREDESK_AI_MODELS", str(tmp_path))
    sig = analyze("I need to activate my new card", account_id=42)
    assert sig.intent == "activate_my_card" and not sig.out_of_scope
    assert sig.as_record()["intent"] == {"name": "activate_my_card", "confidence": sig.intent_confidence}
    assert analyze("I need to activate my new card", account_id=7).intent is None  # no model for that account
