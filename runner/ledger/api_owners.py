"""The ledger protocol's owners: claims, leases, taking over an expired owner's work, the rescue journal's task ids
and the shared rate bucket (:class:`LedgerOwners`, part of :class:`~runner.ledger.api.LedgerBackend`; the rules of
several writers are that module's docstring)."""

from __future__ import annotations

from typing import Protocol

from runner.ledger.records import JobRecord

__all__ = ["LEASE_TTL_S", "LedgerOwners"]

LEASE_TTL_S = 60.0  # how long an owner's lease lasts after a renewal


class LedgerOwners(Protocol):
    """Who holds which work, and for how long."""

    def renew_lease(self, owner: str, *, ttl: float = LEASE_TTL_S) -> bool:
        """Take or extend ``owner``'s lease until now + ``ttl``. False (nothing renewed) when its
        lease had expired: its work may have been taken over; the owner must stop submitting."""

    def claim_pending(self, n: int, owner: str, *, manifest: str | None = None) -> list[JobRecord]:
        """Atomically claim up to ``n`` pending jobs no live owner holds, in planning order."""

    def release_claims(self, owner: str) -> int:
        """Give back ``owner``'s claims on jobs still pending; returns how many."""

    def recover_expired(self, owner: str) -> int:
        """Take over expired owners' work (see :mod:`runner.ledger.api`); returns how many jobs became
        in doubt. Journaled task ids are recorded first (:meth:`apply_rescue`)."""

    def apply_rescue(self) -> int:
        """Record the task ids of the rescue journal (submitting → running); returns how many."""

    def rescue_task_id(self, key: str, attempt_id: int, task_id: str) -> bool:
        """Journal an accepted task id the ledger could not record; never raises, False if that failed too."""

    def take_token(self, bucket: str, *, per_minute: float) -> float:
        """Take one token of the rate bucket ``bucket`` (it holds at most one and refills at ``per_minute``
        a minute); the seconds the caller must wait before using it (0: at once). A token taken is never
        given back: every caller of the ledger together uses at most 1 + ``per_minute`` × T / 60 tokens
        in any T seconds. PostgreSQL keeps the bucket in the database on the server's clock (the submit
        rate of several runners together); SQLite and memory keep it in the process (one runner)."""
