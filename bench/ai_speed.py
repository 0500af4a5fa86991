"""Speed and memory of the embedded AI layer on this machine.

    .venv/bin/python bench/ai_speed.py

- training time of the intent model on BANKING77 train (10,003 rows), embedding included;
- one message through embed + intent + signals: p50 and p95 over 300 BANKING77 test messages,
  one at a time;
- batched throughput of embed + intent + signals over the 3,080 BANKING77 test messages
  (batches of 256, as `caredesk nlu predict` and the pipeline send them), the way the product
  does it: `analyze(batch, account_id=..., models_dir=...)` with the trained model saved as the
  account's (the embedding runs on other threads while the text signals are worked out); then
  each stage alone, one after the other, for the split (and the signals' CPU per message);
- resident memory (RSS) of the process with the embedder, the intent model and the signals loaded.

On a shared machine wall-clock figures depend on what else runs, so the load average is printed
and each figure also comes as CPU time of this process (all its threads), which other processes
do not inflate: with the 2 cores to itself, wall time is close to CPU time / 2 for the batched
embedding (2 threads) and close to CPU time for one message.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", ROOT.parent / "shared" / "data"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"RSS at start: {rss_mb():.0f} MB")
    from caredesk.ai.embedder import get_embedder
    from caredesk.ai.intent import IntentClassifier
    from caredesk.ai.signals import analyze

    started = time.perf_counter()
    emb = get_embedder()
    emb.embed(["warm up"])
    print(f"embedder ({emb.backend}) loaded in {time.perf_counter() - started:.2f}s; RSS {rss_mb():.0f} MB")

    train = [json.loads(line) for line in (DATA / "banking77" / "train.jsonl").open()]
    test = [json.loads(line)["text"] for line in (DATA / "banking77" / "test.jsonl").open()]
    started, cpu_started = time.perf_counter(), time.process_time()
    model = IntentClassifier.train([r["text"] for r in train], [r["label"] for r in train], embedder=emb)
    wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"training on BANKING77 ({len(train)} rows, embedding included): {wall:.1f}s wall, {cpu_s:.1f}s CPU"
    )
    print(f"load average: {os.getloadavg()[0]:.2f}")
    analyze(["warm up the language detector", "Hola, ¿dónde está mi pedido?"])
    print(f"RSS with embedder + BANKING77 intent model + signals loaded: {rss_mb():.0f} MB")

    def one(text: str) -> None:
        vec = emb.embed([text])
        model.predict([text], vectors=vec)
        analyze([text])

    for text in test[:20]:
        one(text)
    times, cpu = [], []
    for text in test[:300]:
        t0, c0 = time.perf_counter(), time.process_time()
        one(text)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    p95 = times[int(0.95 * len(times))]
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"one message, embed + intent + signals: p50 {statistics.median(times):.2f} ms, p95 {p95:.2f} ms")
    print(f"  CPU time per message: p50 {statistics.median(cpu):.2f} ms")

    # The product path: the account's saved model, as the pipeline step and the conductor load it.
    models = Path(tempfile.mkdtemp(prefix="caredesk-bench-models-"))
    model.save(models / "1" / "intent")
    batches = [test[i : i + 256] for i in range(0, len(test), 256)]
    analyze(batches[0], account_id=1, models_dir=models)  # loads the saved model
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        analyze(batch, account_id=1, models_dir=models)
    total = time.perf_counter() - started
    cpu_total = time.process_time() - cpu_started
    load = os.getloadavg()[0]
    shutil.rmtree(models)

    # Each stage alone, one after the other, on the same batches.
    wall = {"embed": 0.0, "intent": 0.0, "signals": 0.0}
    cpu_parts = dict(wall)
    for batch in batches:
        t0, c0 = time.perf_counter(), time.process_time()
        vecs = emb.embed(batch)
        t1, c1 = time.perf_counter(), time.process_time()
        model.predict(batch, vectors=vecs)
        t2, c2 = time.perf_counter(), time.process_time()
        analyze(batch)
        t3, c3 = time.perf_counter(), time.process_time()
        for key, (a, b, ca, cb) in {
            "embed": (t0, t1, c0, c1),
            "intent": (t1, t2, c1, c2),
            "signals": (t2, t3, c2, c3),
        }.items():
            wall[key] += b - a
            cpu_parts[key] += cb - ca
    split = ", ".join(f"{k} {v:.2f}s" for k, v in wall.items())
    cpu_split = ", ".join(f"{k} {v:.2f}s" for k, v in cpu_parts.items())
    print(
        f"batched ({len(test)} messages, batches of 256, analyze(batch, account_id=...)): "
        f"{len(test) / total:.0f} msg/s ({total:.2f}s)"
    )
    print(
        f"  CPU time: {cpu_total:.1f}s = {len(test) / cpu_total:.0f} msg per CPU-second; load average {load:.2f}"
    )
    print(f"  stages alone, one after the other: {split} (sum {sum(wall.values()):.2f}s)")
    print(
        f"  CPU time of the stages: {cpu_split}; signals {cpu_parts['signals'] / len(test) * 1e6:.0f} us "
        f"a message; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
