"""The API key scrubbed from foreign text (issue 12): a short key never out of ordinary words, and never left
in the places a key is echoed — URLs (percent-encoded too), headers, JSON bodies with escapes."""

from __future__ import annotations

import pytest

from runner.client.connection import redact

SHORT = "k3y+/="  # 6 characters: replaced only as a token of its own
LONG = "sk_live_Zq9+x/4f9a1c7e5b=="


@pytest.mark.parametrize("text", [
    "rate limit exceeded", "Rate Limit Exceeded", "xcexce", "the excellent exception", "INVALID_API_KEY: key xcell",
])
def test_a_short_key_is_not_scrubbed_out_of_ordinary_words(text: str) -> None:
    assert redact(text, "xce") == text
    assert redact(text, "e") == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer k3y+/=", "Authorization: Bearer ***"),
    ("GET /v3/task?key=k3y%2B%2F%3D&x=1", "GET /v3/task?key=***&x=1"),  # percent-encoded in a URL
    ("GET /v3/task?key=k3y%2b%2f%3d", "GET /v3/task?key=***"),  # lower-case escapes
    ('{"echo": "line one\\nk3y+/="}', '{"echo": "line one\\n***"}'),  # after a JSON escape
    ("a%20k3y+/=", "a%20***"),  # after a percent escape
    ("'k3y+/=' is not a valid key", "'***' is not a valid key"),
])
def test_a_short_key_is_scrubbed_where_a_key_is_echoed(text: str, expected: str) -> None:
    assert redact(text, SHORT) == expected


@pytest.mark.parametrize(("text", "expected"), [
    (f"prefix{LONG}suffix", "prefix***suffix"),  # a long key: everywhere, inside words too
    ("https://x.test/?key=sk_live_Zq9%2Bx%2F4f9a1c7e5b%3D%3D", "https://x.test/?key=***"),
    ("sk_live_Zq9%2bx%2f4f9a1c7e5b%3d%3d", "***"),
])
def test_a_long_key_is_scrubbed_everywhere_raw_or_percent_encoded(text: str, expected: str) -> None:
    assert redact(text, LONG) == expected
