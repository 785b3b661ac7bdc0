"""When a refused submit's job is sent again, and when refusals in a row end the submits.

A refusal created nothing (:mod:`runner.client.submit`), so its job may be sent again; but a provider that
keeps refusing must not be asked for ever. Three kinds come back:

- a 429: the rate limiter learns it, and the job waits the provider's Retry-After (else the limiter's interval);
- a connection that failed before sending: backed off, doubled per failure in a row; after
  ``unreachable_after`` of them the run stops (``ProviderUnreachable``, exit 5; ``DiskError``, exit 6, when the last
  could not be made for want of a file descriptor: ``ulimit -n``, not the network); a request that waited out the
  pool timeout for one of this process's own connections (``PoolTimeout``: a pool fitted to the open-file limit) is
  sent again after a short wait and never counted: it says nothing of the provider (after ``create_failed_for_s``
  of them with no task accepted, the submits end for this run, as below);
- a 5xx the provider says created nothing (``CREATE_TASK_FAILED``): backed off, doubled per refusal in a row
  up to ``connect_backoff_max``; once such refusals, with no task accepted in between, have lasted
  ``create_failed_for_s``, the submits end for this run (the tasks already paid for are still collected) with a
  ``TransientError`` naming the provider's words (exit 3). A provider answering it to every POST used to be
  asked ~4,700 times an hour, for ever, the run never ending and saying nothing;
- a submit that could not be made ready because a module could not be imported (``PROGRAM_CHANGED``: an upgrade
  of runner or pydantic under the run): the submits end for this run at once (the tasks already paid for are
  still collected), with a ``TransientError`` saying so (exit 3); its job stays pending, never in doubt.

An accepted task ends both streaks.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from runner.client import SubmitResult
from runner.client.submit import NO_DESCRIPTOR, NOT_SENT_NOTE, POOL_BUSY, PROGRAM_CHANGED
from runner.engine.policy import Policy
from runner.engine.ratelimit import RateLimiter
from runner.errors import DiskError, ProviderUnreachable, RunnerError, TransientError

__all__ = ["Again", "Refusals"]


@dataclasses.dataclass(frozen=True, slots=True)
class Again:
    """What a retryable refusal means: the job is sent again after ``delay`` seconds, unless the run stops."""

    delay: float
    fatal: RunnerError | None = None  # the run stops (nothing reaches the provider)
    stop: RunnerError | None = None  # no more submits this run; what was paid for is still collected


class Refusals:
    """The submit lane's memory of refusals in a row (no awaits: called in the breath that records the answer)."""

    def __init__(self, policy: Policy, limiter: RateLimiter, rng: random.Random, clock: Callable[[], float],
                 base_url: str) -> None:
        self.policy = policy
        self.limiter = limiter
        self.rng = rng
        self.clock = clock
        self.base_url = base_url
        self.connect_failures = 0
        self.create_failures = 0
        self._create_since: float | None = None  # the clock time of the streak's first CREATE_TASK_FAILED
        self._busy_since: float | None = None  # the clock time of the first submit of a streak that found no connection

    def accepted(self) -> None:
        """A task was accepted: the provider reaches and creates again."""
        self.connect_failures = self.create_failures = 0
        self._create_since = self._busy_since = None

    def again(self, result: SubmitResult) -> Again:
        policy = self.policy
        if result.http_status == 429:
            self.limiter.on_rate_limited(result.retry_after)
            return Again(result.retry_after if result.retry_after is not None else float(self.limiter.interval))
        if result.http_status is None and result.reason == POOL_BUSY:  # this process's own connections were all
            # busy (the pool fitted to the open-file limit is smaller than the concurrency): nothing was sent, and
            # nothing is said of the provider, which answered each request it was sent; waited again, never counted
            # as a failed connect — unless none was free for create_failed_for_s with no task accepted: the submits end
            now = self.clock()
            if self._busy_since is None:
                self._busy_since = now
            busy = None
            if now - self._busy_since >= policy.create_failed_for_s:
                busy = TransientError(
                    f"no connection of this process's pool was free for a submit for {(now - self._busy_since) / 60:.0f}"
                    f" min ({result.message}); nothing more is sent this run (the jobs are pending, nothing was sent for"
                    " them); run again, with a higher open-file limit (`ulimit -n`) if the run said it opens fewer"
                    " connections", status=None, reason=POOL_BUSY)
            return Again(policy.connect_backoff * (0.5 + self.rng.random()), stop=busy)
        self._busy_since = None
        if result.reason == PROGRAM_CHANGED:  # an upgrade under the run: every later submit would meet it too
            return Again(0.0, stop=TransientError(
                "runner's files changed while this run was going (an upgrade or a `git pull`?) and a submit could not"
                f" be made ready ({result.message}); nothing more is sent this run (the jobs are pending, nothing was"
                " sent for them), what was paid for is still collected; run again (if it says this at once, reinstall"
                " runner)", status=None, reason=PROGRAM_CHANGED))
        if result.http_status is None:  # connect error: nothing was sent
            self.connect_failures += 1
            fatal: RunnerError | None = None
            if self.connect_failures >= policy.unreachable_after and result.reason == NO_DESCRIPTOR:
                fatal = DiskError(  # exit 6: the process's limit, which the next run meets again
                    f"{self.connect_failures} connections in a row could not be made: this process has no file"
                    f" descriptor left ({result.message}); raise the open-file limit (`ulimit -n`, systemd's"
                    " LimitNOFILE=) and run again (the jobs are pending, nothing was sent)")
            elif self.connect_failures >= policy.unreachable_after:
                # the cause in words (DNS, TLS, a proxy's refusal: runner.client.unreachable), not "ConnectError"
                cause = result.message.removesuffix(f" ({NOT_SENT_NOTE})") or result.reason
                fatal = ProviderUnreachable(
                    f"the provider at {self.base_url} is unreachable ({self.connect_failures} connections"
                    f" failed, the last: {cause}); check the network, or --base-url / NOVITA_BASE_URL; run again"
                    " later (the jobs are pending, nothing was sent)")
            backoff = min(policy.connect_backoff_max, policy.connect_backoff * 2.0**self.connect_failures)
            return Again(backoff * (0.5 + self.rng.random()), fatal=fatal)
        # CREATE_TASK_FAILED and the like: the provider answers, and creates nothing.
        now = self.clock()
        self.create_failures += 1
        if self._create_since is None:
            self._create_since = now
        backoff = min(policy.connect_backoff_max, policy.refused_delay * 2.0 ** min(self.create_failures - 1, 16))
        stop = None
        lasted = now - self._create_since
        if self.create_failures >= 3 and lasted >= policy.create_failed_for_s:
            stop = TransientError(
                f"the provider has refused every submit for {lasted / 60:.0f} min ({self.create_failures} in a row,"
                f" the last: HTTP {result.http_status} {result.reason or ''}: {result.message}); no task was created"
                " for them and nothing more is sent this run (the jobs are pending; run again later)",
                status=result.http_status, reason=result.reason)
        return Again(backoff * (0.5 + self.rng.random()), stop=stop)
