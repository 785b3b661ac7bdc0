"""The ledger protocol's review and renames: an operator's verdict on a done job's video, and a done job's file moved
to the name an edited manifest gives it (:class:`LedgerReview`, part of :class:`~runner.ledger.api.LedgerBackend`).
Each changes a done job's record, never what was paid."""

from __future__ import annotations

from typing import Protocol

from runner.ledger.records import RejectionRecord

__all__ = ["LedgerReview"]


class LedgerReview(Protocol):
    """What happens to a done job after its download: review decisions, a video restored, its file renamed."""

    # ---------------------------------------------------------------- review

    def reject(self, key: str, *, reason: str) -> bool:
        """done → done with ``review = "rejected"``, durable: the operator rejected the video; a
        rejection records its path, sha256, size and task. Refused (False): not done, or already
        rejected. Exports and the gallery's default view leave a rejected video out."""

    def accept(self, key: str) -> bool:
        """done → done with ``review = "accepted"``, durable; an open rejection is withdrawn."""

    def requeue_rejected(self, key: str, *, kept_path: str) -> bool:
        """done (rejected) → pending, durable: the job gets a fresh sample (``sample + 1``) on its next
        submit, a new paid task through the same write-ahead path. Its key, attempts and spend stay;
        its stored-file fields are cleared; the rejection records ``kept_path``, where the rejected
        video was moved aside (the caller moves it first). Refused (False) unless done and rejected."""

    def restore_file(self, key: str, *, path: str, sha256: str, bytes: int) -> bool:
        """done → done: the job's video was downloaded again (``runner verify``) and is at ``path``."""

    def rejections(self, key: str) -> list[RejectionRecord]:
        """Every rejection of ``key``, oldest first."""

    def review_counts(self, manifest: str | None = None) -> dict[str, int]:
        """Done jobs of ``manifest`` (or all) by review decision: ``{"rejected": n, "accepted": m}`` (a
        regenerated job is pending again: no longer counted)."""

    def rejected_keys(self, manifest: str) -> list[str]:
        """Keys of ``manifest``'s done jobs rejected in review (not regenerated yet), in planning order."""

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        """Record (key, src, dst) renames of stored files before any is made (write-ahead)."""

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        """The renames recorded but not yet finished (a run stopped midway), as (key, src, dst)."""

    def finish_rename(self, key: str, *, src: str, dst: str) -> bool:
        """done → done: the job's file was renamed from ``src`` to ``dst``; its journal entry goes."""

    def forget_rename(self, key: str) -> None:
        """Drop a journaled rename that was not made (its file stays where the job records it)."""
