"""Issue 11 item 2 and the manifest side of item 5: the model as a variable, prices per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stub_family import FOURK, I2V, STD, family  # noqa: F401 - the fixture

from runner.errors import ManifestError
from runner.manifest import expand, load_manifest
from runner.pricing import Price

PRO = "kling-v3.0-pro-t2v"


def plan(tmp_path: Path, text: str) -> list[Any]:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return list(expand(load_manifest(path)))


def refused(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        plan(tmp_path, text)
    return info.value


@pytest.mark.usefixtures("family")
def test_a_model_axis_compares_models_on_the_same_prompts(tmp_path: Path) -> None:
    jobs = plan(tmp_path, f"name: cmp\nprompt: 'a {{subject}} by {{model}}'\n"
                          f"matrix:\n  model: [{STD}, {PRO}]\n  subject: [fox, owl]\n"
                          "output: '{model}/{subject}.mp4'\n")
    assert [(job.model, job.vars["subject"]) for job in jobs] == [
        (STD, "fox"), (STD, "owl"), (PRO, "fox"), (PRO, "owl")]
    assert jobs[0].request["prompt"] == f"a fox by {STD}"
    assert jobs[0].output == f"{STD}/fox.mp4"
    assert [job.estimated_usd for job in jobs] == [pytest.approx(0.42)] * 2 + [pytest.approx(0.56)] * 2
    assert len({job.key for job in jobs}) == 4


@pytest.mark.usefixtures("family")
def test_adding_a_model_axis_keeps_the_keys_of_the_jobs_of_the_former_model(tmp_path: Path) -> None:
    """The key hashes the endpoint and the body, never the variables: the Pro jobs are the same jobs."""
    single = plan(tmp_path, "name: k\nprompt: 'a {subject}'\nmatrix: {subject: [fox, owl]}\n")
    both = plan(tmp_path, f"name: k\nprompt: 'a {{subject}}'\nmatrix: {{model: [{STD}, {PRO}], subject: [fox, owl]}}\n")
    assert [job.key for job in both if job.model == PRO] == [job.key for job in single]


@pytest.mark.usefixtures("family")
def test_model_in_the_top_level_is_a_template_variable_too(tmp_path: Path) -> None:
    (job,) = plan(tmp_path, f"name: t\nmodel: {STD}\nprompt: 'by {{model}}'\noutput: '{{model}}.mp4'\n")
    assert job.request["prompt"] == f"by {STD}" and job.output == f"{STD}.mp4" and job.model == STD


@pytest.mark.usefixtures("family")
def test_a_rows_column_picks_the_model_and_an_unknown_one_names_the_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(f"model,subject\n{STD},fox\n,owl\n")
    jobs = plan(tmp_path, "name: r\nprompt: 'a {subject}'\nmatrix: {rows: {file: rows.csv}}\n")
    assert [job.model for job in jobs] == [STD, PRO]  # an empty cell: the top-level model
    named = plan(tmp_path, "name: r\nprompt: 'a {subject} by {model}'\nmatrix: {rows: {file: rows.csv}}\n"
                           "output: '{model}-{subject}.mp4'\n")
    assert [(job.request["prompt"], job.output) for job in named] == [
        (f"a fox by {STD}", f"{STD}-fox.mp4"), (f"a owl by {PRO}", f"{PRO}-owl.mp4")]
    (tmp_path / "rows.csv").write_text(f"model,subject\n{STD},fox\nkling-v3.0-pro-t2w,owl\n")
    error = refused(tmp_path, "name: r\nprompt: 'a {subject}'\nmatrix: {rows: {file: rows.csv}}\n")
    assert error.rule == "unknown-model" and error.line == 3 and "rows.csv" in str(error.path)
    assert "did you mean 'kling-v3.0-pro-t2v'" in str(error)


@pytest.mark.usefixtures("family")
def test_an_unknown_model_on_an_axis_is_refused_at_its_line(tmp_path: Path) -> None:
    error = refused(tmp_path, f"name: u\nprompt: a\nmatrix:\n  model:\n    - {STD}\n    - kling-v9\n")
    assert error.rule == "unknown-model" and error.line == 6


@pytest.mark.usefixtures("family")
def test_each_job_is_validated_against_its_own_endpoint_naming_it_and_the_job(tmp_path: Path) -> None:
    error = refused(tmp_path, f"name: v\nprompt: a\nmatrix:\n  model: [{PRO}, {I2V}]\n  aspect_ratio: ['9:16']\n"
                              f"  include: [{{model: {I2V}, image: 'https://example.com/a.png'}}]\n")
    text = str(error)
    assert f"{I2V} has no such field" in text and f"model: {I2V}" in text and "aspect_ratio" in text
    assert error.line == 5


@pytest.mark.usefixtures("family")
def test_a_model_without_a_price_is_unpriced_unless_pricing_names_it(tmp_path: Path) -> None:
    text = f"name: p\nprompt: a\nmatrix: {{model: [{STD}, {FOURK}]}}\n"
    jobs = plan(tmp_path, text)
    assert [job.estimated_usd for job in jobs] == [pytest.approx(0.42), 0.0]
    manifest = load_manifest(tmp_path / "m.yaml")
    assert manifest.unpriced_models() == (FOURK,) and manifest.price_for(FOURK) is None
    jobs = plan(tmp_path, text + f"pricing:\n  {FOURK}: {{per_second: 0.42, per_second_sound: 0.63}}\n")
    assert [job.estimated_usd for job in jobs] == [pytest.approx(0.42), pytest.approx(2.1)]
    assert load_manifest(tmp_path / "m.yaml").unpriced_models() == ()


@pytest.mark.usefixtures("family")
def test_the_single_pricing_form_prices_every_model(tmp_path: Path) -> None:
    jobs = plan(tmp_path, f"name: p\nprompt: a\nmatrix: {{model: [{STD}, {FOURK}]}}\npricing: {{per_second: 1}}\n")
    assert [job.estimated_usd for job in jobs] == [pytest.approx(5.0)] * 2
    assert load_manifest(tmp_path / "m.yaml").pricing == Price(1, 1.5)


@pytest.mark.usefixtures("family")
def test_pricing_for_an_unknown_model_or_with_a_bad_key_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, f"name: p\nprompt: a\npricing:\n  {STD}x: {{per_second: 1}}\n")
    assert error.rule == "unknown-model" and error.line == 4
    error = refused(tmp_path, f"name: p\nprompt: a\npricing:\n  {STD}: {{per_secnd: 1}}\n")
    assert error.rule == "unknown-key" and "did you mean 'per_second'" in str(error)
