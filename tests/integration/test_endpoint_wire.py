"""Identity body vs wire body: a transport-only field is sent but never re-keys a job.

The endpoint of these tests is Kling v3.0 Pro T2V with one transport-only field added to its wire
body (a webhook URL, as ``extra.webhook`` — Novita's shape for other v3 endpoints). Planning gives
the same keys as without it (so existing ledgers pay nothing again), the ledger keeps the request
without it, and the engine POSTs the wire body built at submit time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runner import endpoints
from runner.endpoints import JsonEndpoint, api
from runner.endpoints.kling_t2v import PRO_T2V, KlingV3ProT2V
from runner.endpoints.media import InputResolver
from runner.engine import StopReason
from runner.jobs import JobState
from runner.manifest import expand, load_manifest

from engine_rig import Rig, make_jobs

HOOK = {"webhook": {"url": "https://hooks.example.test/novita"}}


class WireWithExtra(KlingV3ProT2V):
    """What the provider would accept: the request plus ``extra``."""

    extra: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WithWebhook(JsonEndpoint):
    def wire_body(self, request: Mapping[str, Any], inputs: InputResolver | None = None) -> dict[str, Any]:
        return {**request, "extra": HOOK}


@pytest.fixture
def webhook_spec(monkeypatch: pytest.MonkeyPatch) -> Iterator[WithWebhook]:
    spec = WithWebhook(**{f.name: getattr(PRO_T2V, f.name) for f in dataclasses.fields(PRO_T2V)})
    spec = dataclasses.replace(spec, wire=WireWithExtra)
    monkeypatch.setitem(api._SPECS, PRO_T2V.slug, spec)
    yield spec


def test_a_transport_only_field_changes_no_key(tmp_path: Path, webhook_spec: WithWebhook) -> None:
    """The golden key of a fixed job is the same with a webhook in the wire body."""
    path = tmp_path / "m.yaml"
    path.write_text('name: golden-c\nprompt: "a red fox in the snow"\n', encoding="utf-8")
    (job,) = expand(load_manifest(path))
    assert endpoints.get(job.model) is webhook_spec
    assert job.key == "7b90eff0517459c1f08f"  # tests/unit/test_job_keys_golden.py, manifest "c"
    assert "extra" not in job.request
    assert webhook_spec.wire_body(job.request)["extra"] == HOOK


@pytest.mark.anyio
async def test_the_engine_sends_the_wire_body_and_the_ledger_keeps_the_request(
    rig_factory: Callable[..., Rig], webhook_spec: WithWebhook
) -> None:
    rig = rig_factory()
    jobs = make_jobs(3)
    rig.plan(jobs)
    result = await rig.run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == 3
    for job in jobs:
        record = rig.ledger.get(job.key)
        assert record is not None and record.task_id is not None
        assert record.request == job.request and "extra" not in record.request
        assert rig.sim.task(record.task_id).body == {**job.request, "extra": HOOK}
