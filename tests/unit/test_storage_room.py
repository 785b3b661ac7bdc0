"""The guess of a video's bytes before it exists (runner/storage/room.py)."""

from __future__ import annotations

from runner.storage.room import MIB, by_size, seconds_asked, video_bytes

T2V = "kling-v3.0-std-t2v"


def test_a_video_is_guessed_from_the_seconds_asked_for() -> None:
    five = video_bytes(T2V, {"duration": 5})
    assert five == 10 * MIB
    assert video_bytes(T2V, {"duration": 10}) == 2 * five
    assert video_bytes("kling-v3.0-4k-i2v", {"duration": 5}) == 4 * five


def test_a_request_without_a_plain_duration_is_guessed_at_the_longest() -> None:
    for request in ({}, {"duration": True}, {"duration": "5"}, {"duration": 0}, {"duration": -3}):
        assert seconds_asked(request) == 30, request
    assert video_bytes("kling-v3.0-motion-control", {"model_name": "kling-v3-0-std"}) == 60 * MIB


def test_sizes_read_as_a_person_reads_them() -> None:
    assert by_size(0) == "0 MiB" and by_size(64 * MIB) == "64 MiB"
    assert by_size(12 << 30) == "12.0 GiB"
