"""The media-input seam: a local file is keyed by its content and resolved only at submit time."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from runner.endpoints.api import Examples, JsonEndpoint, Templating
from runner.endpoints.media import InputChanged, LocalFile, identity_value, is_local_ref, wire_value

SHA = "a" * 64


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    image: str | LocalFile


SPEC = JsonEndpoint(
    slug="test-i2v",
    request_model=_Body,
    templating=Templating(prompt="prompt"),
    default_price=None,
    examples=Examples(valid=(), invalid=()),
    media_fields={"image": "image"},
)


def _ref(path: str = "frames/a.png", sha: str = SHA) -> dict[str, Any]:
    return {"file": path, "sha256": sha, "size": 10, "kind": "image", "mime": "image/png"}


class _Inline:
    def __init__(self) -> None:
        self.seen: list[LocalFile] = []

    def wire_value(self, ref: LocalFile) -> str:
        self.seen.append(ref)
        return f"data:{ref.mime};base64,QUJD"


def test_identity_keeps_only_the_content_hash_of_a_local_file() -> None:
    stored = SPEC.request_body({"prompt": "p", "image": _ref()})
    moved = SPEC.request_body({"prompt": "p", "image": _ref("elsewhere/b.png")})
    assert stored["image"]["file"] == "frames/a.png"  # the ledger keeps the reference
    assert SPEC.identity_body(stored) == SPEC.identity_body(moved) == {"prompt": "p", "image": {"sha256": SHA}}
    edited = SPEC.request_body({"prompt": "p", "image": _ref(sha="b" * 64)})
    assert SPEC.identity_body(edited) != SPEC.identity_body(stored)


def test_a_url_is_its_own_identity_and_sent_as_is() -> None:
    stored = SPEC.request_body({"prompt": "p", "image": "https://example.com/a.png"})
    assert SPEC.identity_body(stored) == stored
    assert SPEC.wire_body(stored) == stored


def test_the_wire_body_resolves_local_files_at_submit_time() -> None:
    stored = SPEC.request_body({"prompt": "p", "image": _ref()})
    inline = _Inline()
    assert SPEC.wire_body(stored, inline) == {"prompt": "p", "image": "data:image/png;base64,QUJD"}
    assert [ref.file for ref in inline.seen] == ["frames/a.png"]
    assert stored["image"]["sha256"] == SHA  # the stored request is not touched


def test_a_local_file_without_a_resolver_is_never_sent() -> None:
    stored = SPEC.request_body({"prompt": "p", "image": _ref()})
    with pytest.raises(InputChanged, match=r"frames/a\.png"):
        SPEC.wire_body(stored)


def test_helpers_tell_references_from_values() -> None:
    assert is_local_ref(_ref()) and not is_local_ref("https://x/y.png") and not is_local_ref({"sha256": SHA})
    assert identity_value("https://x") == "https://x"
    assert wire_value(None, None) is None
