"""The words the dataset audits compare: near-duplicate queries and eval-set contamination."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's words, compatibility-normalised and case-folded."""
    if not text.isascii():  # ASCII is its own NFKC form
        text = unicodedata.normalize("NFKC", text)
    return WORD.findall(text.casefold())
