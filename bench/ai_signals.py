"""Escalation, frustration and reply-coach figures on the hand-labelled sets in tests/data/.

.venv/bin/python bench/ai_signals.py [--errors]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from caredesk.ai.coach import review_reply  # noqa: E402
from caredesk.ai.metrics import binary_report  # noqa: E402
from caredesk.ai.signals import analyze  # noqa: E402

FRUSTRATED_AT = 0.5


def main() -> None:
    show = "--errors" in sys.argv
    msgs = [json.loads(line) for line in (ROOT / "tests" / "data" / "support_messages.jsonl").open()]
    sigs = analyze([m["text"] for m in msgs])
    print(f"support messages: {len(msgs)}")
    print(
        "escalation (any reason):", binary_report([m["escalate"] for m in msgs], [s.escalate for s in sigs])
    )
    right_reason = sum(
        s.escalate_reason == m["escalate_reason"]
        for m, s in zip(msgs, sigs, strict=True)
        if m["escalate"] and s.escalate
    )
    both = sum(m["escalate"] and s.escalate for m, s in zip(msgs, sigs, strict=True))
    print(f"escalation reason agrees on {right_reason}/{both} escalated messages both sides flagged")
    for reason in sorted({m["escalate_reason"] for m in msgs if m["escalate_reason"]}):
        r = binary_report(
            [m["escalate_reason"] == reason for m in msgs], [s.escalate_reason == reason for s in sigs]
        )
        print(f"  {reason:20s} precision {r['precision']:.3f} recall {r['recall']:.3f} (n={r['positives']})")
    print(
        f"frustration (score >= {FRUSTRATED_AT}):",
        binary_report([m["frustrated"] for m in msgs], [s.frustration >= FRUSTRATED_AT for s in sigs]),
    )
    replies = [json.loads(line) for line in (ROOT / "tests" / "data" / "agent_replies.jsonl").open()]
    reviews = [review_reply(r["customer"], r["reply"]) for r in replies]
    print(f"agent replies: {len(replies)}")
    print("coach (scripted):", binary_report([r["scripted"] for r in replies], [v.scripted for v in reviews]))
    if show:
        for m, s in zip(msgs, sigs, strict=True):
            if m["escalate"] != s.escalate or (m["escalate"] and m["escalate_reason"] != s.escalate_reason):
                print("ESC", m["escalate_reason"], "->", s.escalate_reason, "|", m["text"])
            if m["frustrated"] != (s.frustration >= FRUSTRATED_AT):
                print("FRU", m["frustrated"], s.frustration, "|", m["text"])
        for r, v in zip(replies, reviews, strict=True):
            if r["scripted"] != v.scripted:
                print("COACH", r["scripted"], v.score, v.reasons, "|", r["reply"])
        print(Counter(s.escalate_reason for s in sigs))


if __name__ == "__main__":
    main()
