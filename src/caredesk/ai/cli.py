"""The AI commands: `caredesk nlu train|predict|eval`, `caredesk signals`, `caredesk coach`.

Heavy libraries (numpy, onnxruntime, scikit-learn) are imported inside the
commands so `caredesk --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from caredesk.ai.jsonl import InputError, iter_rows, read_file, write_row

if TYPE_CHECKING:
    from caredesk.ai.intent import IntentClassifier
    from caredesk.ai.protocols import IntentPrediction

CHUNK = 256
T = TypeVar("T")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _guard(fn: Callable[[], T]) -> T:
    """Turn expected failures into a one-line message and exit code 2 (never a traceback)."""
    from caredesk.ai.intent import ModelDirError

    try:
        return fn()
    except (InputError, ModelDirError, ValueError) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail raises


def _stdin_rows(fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return list(iter_rows(sys.stdin, fields, "standard input"))


def _predict_chunks(clf: IntentClassifier, chunks: list[list[str]]) -> Iterator[list[IntentPrediction]]:
    """`clf.predict(chunk)` for each chunk, in order. The embedding (ONNX Runtime, no GIL) runs on
    another thread one chunk ahead, while this thread works out the n-grams and predictions and
    the caller writes them out: both cores busy, the same predictions."""
    from concurrent.futures import ThreadPoolExecutor

    if not chunks:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="caredesk-nlu") as pool:
        pending = pool.submit(clf.embedder.embed, chunks[0])
        for k, chunk in enumerate(chunks):
            features = clf.features(chunk)
            vectors = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(clf.embedder.embed, chunks[k + 1])
            yield clf.predict(chunk, vectors, features)


def _model_dir(path: Path) -> Path:
    if not path.is_dir():
        raise InputError(f"{path}: no such model folder; train one with `caredesk nlu train`")
    return path


nlu = typer.Typer(help="Intent models: train, predict, evaluate.", no_args_is_help=True)


@nlu.command()
def train(
    data: Annotated[
        Path, typer.Option("--data", help="JSON Lines of {text, label}; label `oos` = out of scope")
    ],
    out: Annotated[Path, typer.Option("--out", help="folder to write the model to")],
    valid: Annotated[
        Path | None,
        typer.Option("--valid", help="held-out {text, label} rows to choose the out-of-scope threshold"),
    ] = None,
) -> None:
    """Train an intent model from labelled examples."""

    def run() -> None:
        from caredesk.ai.intent import IntentClassifier

        started = time.perf_counter()
        rows = read_file(data, ("text", "label"))
        held = None
        if valid is not None:
            vrows = read_file(valid, ("text", "label"))
            held = ([r["text"] for r in vrows], [r["label"] for r in vrows])
        typer.echo(f"read {len(rows)} examples from {data}", err=True)
        model = IntentClassifier.train(
            [r["text"] for r in rows],
            [r["label"] for r in rows],
            valid=held,
            progress=lambda m: typer.echo(f"[{time.perf_counter() - started:6.1f}s] {m}", err=True),
        )
        model.save(out)
        typer.echo(f"saved model to {out} in {time.perf_counter() - started:.1f}s")

    _guard(run)


@nlu.command()
def predict(model: Annotated[Path, typer.Option("--model", help="model folder from `nlu train`")]) -> None:
    """Read {text} lines on standard input; write {text, label, confidence, out_of_scope} lines."""

    def run() -> None:
        from caredesk.ai.intent import load_intent_model

        clf = load_intent_model(_model_dir(model))
        rows = _stdin_rows(("text",))
        chunks = [[r["text"] for r in rows[start : start + CHUNK]] for start in range(0, len(rows), CHUNK)]
        for preds in _predict_chunks(clf, chunks):
            for p in preds:
                write_row(
                    sys.stdout,
                    {
                        "text": p.text,
                        "label": p.label,
                        "confidence": p.confidence,
                        "out_of_scope": p.out_of_scope,
                    },
                )
        sys.stdout.flush()

    _guard(run)


@nlu.command("eval")
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="model folder from `nlu train`")],
    data: Annotated[Path, typer.Option("--data", help="JSON Lines of {text, label}")],
) -> None:
    """Print accuracy, in-scope accuracy, out-of-scope recall/precision, macro F1 and speed."""

    def run() -> None:
        from caredesk.ai.intent import load_intent_model
        from caredesk.ai.metrics import intent_report

        clf = load_intent_model(_model_dir(model))
        rows = read_file(data, ("text", "label"))
        texts = [r["text"] for r in rows]
        started = time.perf_counter()
        preds = [p for chunk in _predict_chunks(clf, [texts]) for p in chunk]
        elapsed = time.perf_counter() - started
        report = intent_report([r["label"] for r in rows], [p.label for p in preds])
        for key, value in report.items():
            typer.echo(f"{key}: {value}")
        typer.echo(f"messages_per_second: {len(texts) / max(elapsed, 1e-9):.1f}")

    _guard(run)


def signals() -> None:
    """Read {text} lines; write language, sentiment, frustration, escalation, spam and slots per line."""

    def run() -> None:
        from caredesk.ai.signals import analyze

        rows = _stdin_rows(("text",))
        for start in range(0, len(rows), CHUNK):
            for sig in analyze([r["text"] for r in rows[start : start + CHUNK]]):
                write_row(sys.stdout, sig.as_dict())
        sys.stdout.flush()

    _guard(run)


def coach() -> None:
    """Read {customer, reply} lines; say whether each reply is script-speak, and why."""

    def run() -> None:
        from caredesk.ai.coach import review_reply

        rows = _stdin_rows(("customer", "reply"))
        for r in rows:
            write_row(sys.stdout, review_reply(r["customer"], r["reply"]).as_dict())
        sys.stdout.flush()

    _guard(run)


def register(app: typer.Typer) -> None:
    """Add the AI commands to the main `caredesk` app."""
    app.add_typer(nlu, name="nlu")
    app.command("signals")(signals)
    app.command("coach")(coach)


def _standalone() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    register(app)
    return app


if __name__ == "__main__":
    _standalone()()
