"""The budget a paying command keeps — ``run``, ``retry``, ``regenerate`` — and where it was said.

It is resolved like every run setting (:func:`runner.config.resolve_one`: ``--budget`` >
``RUNNER_BUDGET_USD`` > the manifest's ``limits.budget_usd``; ``none`` lifts it) by
:func:`runner.service.settings.budget_for`, so a command that queues paid work refuses exactly
what the next ``runner run`` would stop at, in words naming the source. A budget cannot be kept
for jobs of no known price (they would count as free): every such command refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.errors import UsageError

__all__ = ["Budget"]

FLAG = "--budget"


@dataclass(frozen=True, slots=True)
class Budget:
    """``usd`` (None: no budget), the source that said it, and what a refusal needs of the manifest."""

    usd: float | None = None
    source: str = FLAG  # --budget, RUNNER_BUDGET_USD or manifest limits.budget_usd
    unpriced: tuple[str, ...] = ()  # the manifest's models of no known price
    manifest_file: str = "the manifest"  # where a price may be given

    @property
    def said(self) -> str:
        """The budget as its source says it: ``--budget 5``, ``RUNNER_BUDGET_USD=5``, ``manifest limits.budget_usd: 5``."""
        amount = "none" if self.usd is None else f"{self.usd:g}"
        if self.source.startswith("-"):
            return f"{self.source} {amount}"
        if self.source.startswith("manifest "):
            return f"{self.source}: {amount}"
        return f"{self.source}={amount}"

    def check_priced(self, *, nothing: str = "nothing was sent") -> None:
        """Refuse (:class:`UsageError`) a budget the manifest's jobs of no known price would pass unseen."""
        if self.usd is None or not self.unpriced:
            return
        example = f"{{{self.unpriced[0]}: {{per_second: …, per_second_sound: …}}}}"
        raise UsageError(
            f"a budget of {self.usd:g} USD ({self.said}) cannot be kept: no price is known for"
            f" {', '.join(self.unpriced)}, whose jobs would count as free. Give one in {self.manifest_file}"
            f" (e.g. pricing: {example}, USD per output second), or say --budget none ({nothing})")

    def check_spend(self, *, spent: float, cost: float, doing: str, instead: str, queued: float = 0.0) -> None:
        """Refuse (:class:`UsageError`, nothing changed) ``doing`` — new paid work estimated at ``cost`` on top
        of ``spent`` and of ``queued`` (what the manifest's jobs already pending will cost the next run: an earlier
        ``regenerate`` or ``retry`` not yet run) — when it would pass the budget, or when the budget cannot be
        kept at all. Without ``queued`` the next run would pay for the older queue first and stop at the budget
        halfway through this one (a regenerated clip's video moved aside and no new one made)."""
        if self.usd is None:
            return
        self.check_priced(nothing="nothing changed")
        if spent + queued + cost > self.usd + 1e-9:
            left = max(0.0, self.usd - spent - queued)
            higher = FLAG if self.source == FLAG else f"{self.source} (or pass a higher {FLAG})"
            waiting = f", ${queued:.2f} already queued for the next run" if queued > 1e-9 else ""
            raise UsageError(
                f"{doing} may cost up to ${cost:.2f}, but {self.said} leaves ${left:.2f} (spent so far ${spent:.2f}"
                f"{waiting}); raise {higher} or {instead} (nothing changed)")
