"""The output guard: what the AI says to a customer never repeats its instructions.

The system prompt tells the model to keep its rules to itself, but a model can be talked
out of that (prompt injection, in a message or in a knowledge article). So the runner
checks the model's customer-visible text itself: a reply that contains :data:`WINDOW`
words in a row of a protected text (the system prompt) is never shown — the turn
escalates instead, and streaming stops before such a run of words goes out. (A
reviewer's feedback is not protected this way: reviewers dictate wording on purpose.
What keeps it from customers is that a regenerated answer is always a draft.)

Words are compared case-insensitively and without punctuation or spacing, so a shouted,
re-spaced or fenced copy is caught as well as a verbatim one. A paraphrase or a
translation is not: that is what the human path (low confidence, drafts) is for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Eight words in a row: long enough that an ordinary reply does not meet one by chance,
# short enough that no sentence of the prompt gets out whole.
WINDOW = 8
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


class OutputGuard:
    """Knows the protected texts of one turn; tells whether a text repeats them."""

    def __init__(self, protected: Iterable[str]) -> None:
        self.windows: set[tuple[str, ...]] = set()
        for text in protected:
            words = _words(text)
            self.windows.update(
                tuple(words[i : i + WINDOW]) for i in range(len(words) - WINDOW + 1)
            )

    def leaks(self, text: str) -> bool:
        """Whether ``text`` contains WINDOW words in a row of a protected text."""
        if not self.windows:
            return False
        words = _words(text)
        return any(
            tuple(words[i : i + WINDOW]) in self.windows for i in range(len(words) - WINDOW + 1)
        )

    def safe_prefix(self, text: str) -> int | None:
        """How much of a growing ``text`` may be streamed now: all but its last
        ``WINDOW - 1`` words (which may be the start of a protected run still to come);
        None once it repeats a protected text."""
        if self.leaks(text):
            return None
        starts = [match.start() for match in _WORD.finditer(text)]
        if len(starts) < WINDOW:
            return 0
        return starts[len(starts) - (WINDOW - 1)]
