"""Text every store can write: a lone surrogate becomes U+FFFD.

A lone surrogate (``"\\ud800"``: half of a UTF-16 pair, a JSON ``\\u`` escape without its other half —
``json.loads`` joins a whole pair into one character, so what is left is lone) is text Python holds and
UTF-8 cannot write: sqlite3, a file or the terminal raise ``UnicodeEncodeError`` on it. Text from
outside that is stored rather than refused — a provider's answer, a decision sent by the review
page's script (``JSON.stringify`` of half an emoji) — takes U+FFFD in its place. A manifest refuses
such a value at its line instead (:mod:`runner.manifest.values`): there the author can fix it.
"""

from __future__ import annotations

import re

__all__ = ["storable"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD; ``text`` itself when it has none."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)
