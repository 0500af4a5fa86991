"""Speed and memory of the embedded AI layer on this machine.

    .venv/bin/python bench/ai_speed.py

- training time of the intent model on BANKING77 train (10,003 rows), embedding included;
- one message through embed + intent + signals: p50 and p95 over 300 BANKING77 test messages,
  one at a time;
- batched throughput of embed + intent + signals over the 3,080 BANKING77 test messages
  (batches of 256, as `caredesk nlu predict` and the pipeline send them);
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
import statistics
import sys
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

    parts = {"embed": 0.0, "intent": 0.0, "signals": 0.0}
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(test), 256):
        batch = test[i : i + 256]
        t0 = time.perf_counter()
        vecs = emb.embed(batch)
        t1 = time.perf_counter()
        model.predict(batch, vectors=vecs)
        t2 = time.perf_counter()
        analyze(batch)
        t3 = time.perf_counter()
        parts["embed"] += t1 - t0
        parts["intent"] += t2 - t1
        parts["signals"] += t3 - t2
    total = time.perf_counter() - started
    cpu_total = time.process_time() - cpu_started
    split = ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())
    print(f"batched ({len(test)} messages, batches of 256): {len(test) / total:.0f} msg/s ({split})")
    print(
        f"  CPU time: {cpu_total:.1f}s = {len(test) / cpu_total:.0f} msg per CPU-second; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
