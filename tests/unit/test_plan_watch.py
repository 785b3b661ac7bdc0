"""PlanWatch: a run's plan changed under it — its files saved, or its manifest registered again from another version."""

from __future__ import annotations

from runner.errors import LedgerUnreachable
from runner.jobs import JobSpec
from runner.ledger import MemoryLedger
from runner.service.replanned import PlanWatch


def _spec(prompt: str) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": prompt, "duration": 5}, vars={}, repeat=1,
                         output=f"{prompt}.mp4", estimated_usd=0.5)


def test_another_version_registered_stops_the_plan_and_a_failed_read_does_not() -> None:
    ledger = MemoryLedger()
    ledger.register("m", "v1", [_spec("a")])
    files: list[str | None] = [None]
    watch = PlanWatch(lambda: files[0], ledger, "m", "v1")
    assert watch() is None  # its own registration
    ledger.register("m", "v1", [_spec("a")])
    assert watch() is None  # a re-registration of the same version
    files[0] = "m.yaml"
    assert watch() == "m.yaml"  # its own files saved: they are named first
    files[0] = None

    def unreachable(name: str) -> str | None:
        raise LedgerUnreachable("lost the connection")

    real = ledger.manifest_digest
    ledger.manifest_digest = unreachable  # type: ignore[method-assign]
    assert watch() is None  # a failed read stops nothing: looked at again a second later
    ledger.manifest_digest = real  # type: ignore[method-assign]
    ledger.register("m", "v2", [_spec("b")])
    said = watch()
    assert said is not None and "another runner on this ledger planned another version" in said
