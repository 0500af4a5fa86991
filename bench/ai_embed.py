"""Embedding speed and closeness, fp32 against int8, on the 3,080 BANKING77 test messages.

    .venv/bin/python bench/ai_embed.py [--rounds 3]

Both precisions go through `MiniLMEmbedder.embed` as the product calls it (tokenizer,
length-sorted batches, one one-thread session per core), all 3,080 messages in one call,
alternating fp32 and int8 for `--rounds` rounds; the median round is reported. CPU time is
the process's (all threads), so "sentences per CPU-second" hardly moves with the load from
other processes while sentences per second of wall time does: the load average is printed
with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from caredesk.ai.embedder import MiniLMEmbedder  # noqa: E402

DATA = Path(os.environ.get("CAREDESK_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in (DATA / "banking77" / "test.jsonl").open()]
    embedders = {p: MiniLMEmbedder("onnx", p) for p in ("fp32", "int8")}
    vectors = {p: e.embed(texts) for p, e in embedders.items()}  # warm-up: sessions, caches
    cpu: dict[str, list[float]] = {p: [] for p in embedders}
    wall: dict[str, list[float]] = {p: [] for p in embedders}
    print(f"{len(texts)} messages, {args.rounds} rounds; load average before: {load()}")
    for r in range(args.rounds):
        for p, e in embedders.items():
            c0, w0 = time.process_time(), time.perf_counter()
            e.embed(texts)
            cpu[p].append(time.process_time() - c0)
            wall[p].append(time.perf_counter() - w0)
            n = len(texts)
            print(
                f"  round {r + 1} {p}: {n / cpu[p][-1]:.0f} sentences per CPU-second, "
                f"{n / wall[p][-1]:.0f} sentences/s (load {load()})"
            )
    n = len(texts)
    per_cpu = {p: n / statistics.median(v) for p, v in cpu.items()}
    per_s = {p: n / statistics.median(v) for p, v in wall.items()}
    for p in embedders:
        print(f"{p}: median {per_cpu[p]:.0f} sentences per CPU-second, {per_s[p]:.0f} sentences/s")
    print(
        f"int8 / fp32: {per_cpu['int8'] / per_cpu['fp32']:.2f}x per CPU-second, "
        f"{per_s['int8'] / per_s['fp32']:.2f}x per second; load average after: {load()}"
    )
    cos = np.sum(vectors["int8"] * vectors["fp32"], axis=1)
    print(
        f"cosine int8 to fp32 over {n}: mean {cos.mean():.5f}, min {cos.min():.5f}, "
        f"1st percentile {np.quantile(cos, 0.01):.5f}"
    )


if __name__ == "__main__":
    main()
