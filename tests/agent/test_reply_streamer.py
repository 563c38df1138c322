"""The streamed final answer: only the ``reply`` text of a confident answer is passed on,
whatever the chunk boundaries (escapes and surrogate pairs cut in half included)."""

from __future__ import annotations

import json

import pytest

from supportdesk.agent.providers.openai_provider import ReplyStreamer

REPLIES = [
    "Your parcel left our warehouse today.",
    'She said "it is broken" \\ twice.\nSecond line\tand a tab.',
    "Grüße aus Köln — 10 € off, ☕ and 🎉 for you.",
]


def deltas_of(answer: str, size: int, threshold: float = 0.7) -> list[str]:
    received: list[str] = []
    streamer = ReplyStreamer(received.append, threshold)
    for start in range(0, len(answer), size):
        streamer.feed(answer[start : start + size])
    return received


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "utf-8"])
@pytest.mark.parametrize("reply", REPLIES, ids=["plain", "escapes", "unicode"])
def test_it_passes_on_the_whole_reply_at_any_chunk_size(reply: str, ascii_only: bool) -> None:
    answer = json.dumps(
        {"confidence": 0.9, "requires_human": False, "reply": reply}, ensure_ascii=ascii_only
    )
    for size in range(1, 14):
        received = deltas_of(answer, size)
        assert "".join(received) == reply, size
        assert all(received), size  # no empty deltas


def test_it_passes_on_nothing_of_an_uncertain_answer() -> None:
    answer = json.dumps({"confidence": 0.3, "requires_human": False, "reply": "Perhaps."})
    assert deltas_of(answer, 3) == []


def test_it_passes_on_nothing_when_a_human_is_required() -> None:
    answer = json.dumps({"confidence": 0.9, "requires_human": True, "reply": "Let me check."})
    assert deltas_of(answer, 3) == []


def test_it_stops_at_the_end_of_the_reply_string() -> None:
    answer = '{"confidence": 0.9, "requires_human": false, "reply": "Done.", "extra": "x"}'
    assert "".join(deltas_of(answer, 4)) == "Done."
