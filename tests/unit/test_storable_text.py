"""Text every store can write: a lone surrogate (half of a ``\\u`` escaped UTF-16 pair) becomes U+FFFD.

One function for the provider's strings (runner.client.untrusted) and the review page's decisions
(runner.review.server), which each had their own copy.
"""

from __future__ import annotations

import json

import pytest

from runner.text import storable


@pytest.mark.parametrize(("given", "kept"), [
    ("plain ascii", "plain ascii"),
    ("café 🦊", "café 🦊"),  # a pair json.loads joined: one character, kept
    (json.loads('"a\\ud800b"'), "a\ufffdb"),
    (json.loads('"\\udc00"'), "\ufffd"),
    (json.loads('"\\ud83e\\udd8a \\ud83e"'), "🦊 \ufffd"),
])
def test_a_lone_surrogate_becomes_the_replacement_character(given: str, kept: str) -> None:
    assert storable(given) == kept
    storable(given).encode("utf-8")  # what the ledger, a file or the terminal does with it


def test_both_callers_use_the_one_function() -> None:
    from runner.client import untrusted
    from runner.review import server
    assert untrusted.storable is storable and server.storable is storable
