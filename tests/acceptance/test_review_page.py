"""`runner review` in a real headless Chromium: clicking reject on a card (and pressing a key)
writes the decision to the ledger; a 3,000-job ledger serves a small first page quickly."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.jobs import JobSpec
from runner.ledger import open_ledger

from cdp_pipe import Browser
from test_cli_support import ProviderFactory, done_trio, provider, run_cli, start_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("RUNNER_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed but RUNNER_REQUIRE_CHROMIUM is set (CI installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    chrome = Browser(found, tmp_path / "profile")
    yield chrome
    chrome.close()


def _serve(tmp_path: Path, manifest: Path, state: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = start_cli("review", str(manifest), "--state", str(state), "--port", "0", *extra, cwd=tmp_path)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"runner review printed {url!r}: {proc.communicate()[1]}")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_clicking_reject_on_a_card_marks_that_job_rejected(
    tmp_path: Path, provider: ProviderFactory, browser: Browser
) -> None:
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    proc, url = _serve(tmp_path, manifest, state)
    try:
        browser.goto(url)
        assert browser.evaluate("document.querySelectorAll('video').length") == 3
        assert browser.evaluate("[...document.querySelectorAll('video')].every(v => v.preload === 'none')")
        browser.click(f'figure[data-key="{keys["cat"]}"] button.reject')
        browser.wait_for(f'document.querySelector(\'figure[data-key="{keys["cat"]}"]\').dataset.review === "rejected"')
        browser.evaluate(f'document.querySelector(\'figure[data-key="{keys["dog"]}"]\').focus()')
        browser.press("a")
        browser.wait_for(f'document.querySelector(\'figure[data-key="{keys["dog"]}"]\').dataset.review === "accepted"')
        with open_ledger(state, readonly=True) as ledger:
            reviews = {name: ledger.get(key).review for name, key in keys.items()}  # type: ignore[union-attr]
            [rejection] = ledger.rejections(keys["cat"])
        assert reviews == {"cat": "rejected", "dog": "accepted", "owl": None}
        assert rejection.reason == "rejected on the review page"
        browser.goto(url + "?page=1")  # the default view leaves rejected clips out
        assert browser.evaluate("document.querySelectorAll('figure.card').length") == 2
        browser.goto(url + "?state=rejected")
        assert browser.evaluate("[...document.querySelectorAll('figure.card')].map(f => f.dataset.key)") == [keys["cat"]]
        assert browser.evaluate(
            f"fetch('/video/{keys['dog']}', {{headers: {{Range: 'bytes=0-7'}}}}).then(r => r.status)") == 206
        # Without the page's token, or from a page naming another host, a decision is refused.
        forged = httpx.post(url + "api/review", json={"key": keys["owl"], "decision": "reject"})
        assert forged.status_code == 403
        token = browser.evaluate("document.querySelector('meta[name=review-token]').content")
        rebound = httpx.post(url + "api/review", json={"key": keys["owl"], "decision": "reject"},
                             headers={"X-Review-Token": token, "Host": "evil.example:80"})
        assert rebound.status_code == 403
        with open_ledger(state, readonly=True) as ledger:
            assert ledger.get(keys["owl"]).review is None  # type: ignore[union-attr]
    finally:
        _stop(proc)


BIG = """\
name: big
prompt: "clip {i}"
defaults:
  duration: 3
matrix:
  i: {range: [0, 1000]}
repeat: 3
"""


def test_a_3000_job_ledger_renders_a_small_first_page(tmp_path: Path, browser: Browser) -> None:
    manifest = write_manifest(tmp_path, "name: big\nprompt: x\n", "big.yaml")
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 3},
                               vars={"i": i}, repeat=r, output=f"c{i}-{r}.mp4", estimated_usd=0.3)
                 for i in range(1000) for r in (1, 2, 3)]
        ledger.register("big", "d", specs)
        with ledger._conn.write() as db:  # 3,000 done jobs at once, no provider needed
            db.execute("UPDATE jobs SET state = 'done', path = 'outputs/big/' || key || '.mp4',"
                       " sha256 = key, bytes = 1")
    proc, url = _serve(tmp_path, manifest, state)
    try:
        started = time.monotonic()
        browser.goto(url)
        seconds = time.monotonic() - started
        videos = browser.evaluate("document.querySelectorAll('video').length")
        assert videos == 24 * 3  # 24 rows of 3 repeats side by side, not 3,000
        assert browser.evaluate("[...document.querySelectorAll('video')].every(v => v.preload === 'none')")
        assert "page 1 of 42" in browser.evaluate("document.querySelector('nav.pages').textContent")
        size = len(httpx.get(url).content)
        print(f"first page of 3,000 jobs: {seconds:.2f} s, {size} bytes")
        assert size < 200_000
        assert seconds < 30  # generous: the figure is printed; the page size is what is asserted
    finally:
        _stop(proc)


def test_review_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    from runner.manifest import expand, load_manifest

    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:  # the manifest planned (a ledger that never saw it is refused first)
        spec = load_manifest(manifest)
        ledger.register(spec.name, spec.digest, expand(spec))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("review", str(manifest), "--state", str(state), "--port", str(port), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert result.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in result.stderr
