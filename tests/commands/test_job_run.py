"""`mlkit job run`: a batch job of examples/batch on this machine, in worker processes, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import assert_one_line_error, mlkit


def read_jsonl(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_a_job_scores_every_item_once_and_the_results_join_back_to_the_input(project):
    proj = project("batch")
    result = mlkit("job", "run", "reviews", "--input", "@reviews.jsonl", "--output", "out", "--workers", "2", "--json", cwd=proj, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["items"], summary["results"], summary["skipped"], summary["shards"], summary["shards_done"]) == (250, 250, 0, 3, 3)
    items = [json.loads(line) for line in (proj / "reviews.jsonl").read_text().splitlines()]
    found = read_jsonl(proj / "out" / "results")
    assert sorted(r["index"] for r in found) == list(range(250))
    # Joined by index, each result is the label the text deserves (odd items were written with praise).
    for r in found:
        assert r["result"]["label"] == ("positive" if r["index"] % 2 else "negative"), (items[r["index"]], r)
    assert not (proj / "out" / "work").exists() and len(list((proj / "out" / "done").iterdir())) == 3
    assert json.loads((proj / "out" / "job.json").read_text())["checked"] is True  # checked before sharding: not again per worker


def test_malformed_lines_are_skipped_with_their_line_numbers_and_fail_the_job_under_on_error_fail(project):
    proj = project("batch")
    lines = (proj / "reviews.jsonl").read_text().splitlines()
    lines[41] = '{"text": "unterminated'
    (proj / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = mlkit("job", "run", "--input", "bad.jsonl", "--output", "out", "--json", cwd=proj, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == 1
    errors = read_jsonl(proj / "out" / "errors")
    assert [(e["index"], e["line"]) for e in errors] == [(41, 42)] and "line 42 is not JSON" in errors[0]["error"]

    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("on_error: skip", "on_error: fail").replace("retries: 2", "retries: 1"))
    result = mlkit("job", "run", "--input", "bad.jsonl", "--output", "out2", cwd=proj, timeout=300)
    assert_one_line_error(result, "shard 0 failed after 2 attempt(s): shard 0, item 41 (line 42): line 42 is not JSON")
    # The shards without the bad line are whole; the failed one kept what came before the line.
    assert sorted(p.name for p in (proj / "out2" / "done").iterdir()) == ["00001.json", "00002.json"]
    assert json.loads((proj / "out2" / "work" / "00000" / "progress.json").read_text())["next"] == 41


def test_bad_input_is_one_line_before_any_work(project, tmp_path):
    proj = project("batch")
    assert_one_line_error(mlkit("job", "run", "--input", "nope.jsonl", "--output", "out", cwd=proj), "--input nope.jsonl: no such file or folder")
    assert_one_line_error(mlkit("job", "run", "--input", "@nope.jsonl", "--output", "out", cwd=proj), "--input @nope.jsonl: no such file")
    (proj / "empty.jsonl").write_text("")
    assert_one_line_error(mlkit("job", "run", "--input", "empty.jsonl", "--output", "out", cwd=proj), "is empty")
    assert_one_line_error(mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out", "--config", "[1]", cwd=proj), "--config: must be a JSON object")
    assert_one_line_error(mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out", "--config", "{x", cwd=proj), "--config: not JSON")
    assert not (proj / "out").exists()
    assert mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out", cwd=proj, timeout=300).returncode == 0
    assert_one_line_error(
        mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out", cwd=proj), "already holds job reviews-", "pass --overwrite"
    )
    result = mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out", "--overwrite", "--config", '{"threshold": 2}', "--json", cwd=proj, timeout=300)
    assert result.returncode == 0, result.stderr
    assert all(r["result"]["label"] == "negative" for r in read_jsonl(proj / "out" / "results")), "the job's --config replaced the API's"
    (proj / "predictor.py").write_text((proj / "predictor.py").read_text() + "\nimport nowhere_to_be_found\n")
    assert_one_line_error(mlkit("job", "run", "--input", "reviews.jsonl", "--output", "out3", cwd=proj), "No module named 'nowhere_to_be_found'")
    assert not (proj / "out3").exists()


def test_a_realtime_api_is_not_a_job_and_a_batch_api_is_not_served(project):
    web = project("sentiment")
    assert_one_line_error(mlkit("job", "run", "--input", "payload.json", "--output", "out", cwd=web), "`mlkit job run` runs `kind: batch` APIs")
    batch = web.parent / "batch"
    assert mlkit("init", str(batch), "--example", "batch", cwd=web.parent).returncode == 0
    assert_one_line_error(mlkit("serve", cwd=batch), "reviews is `kind: batch`: it runs as jobs, not a service")


def test_ten_thousand_items_in_eight_shards_with_three_workers_each_result_once(project):
    """The issue's scale: 10,000 items, 8 shards, 3 worker processes, the example's real predictor."""
    proj = project("batch")
    reviews = (proj / "reviews.jsonl").read_text().splitlines()
    (proj / "many.jsonl").write_text("".join(reviews[i % len(reviews)] + "\n" for i in range(10_000)))
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("shard_size: 100", "shard_size: 1250"))
    result = mlkit("job", "run", "--input", "many.jsonl", "--output", "out", "--workers", "3", "--json", cwd=proj, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["items"], summary["results"], summary["shards"], summary["shards_done"]) == (10_000, 10_000, 8, 8)
    found = read_jsonl(proj / "out" / "results")
    assert sorted(r["index"] for r in found) == list(range(10_000))
    assert all(r["result"]["label"] == ("positive" if (r["index"] % len(reviews)) % 2 else "negative") for r in found)


def test_an_item_the_predictors_input_refuses_is_one_line_before_any_shard(project):
    proj = project("batch")
    lines = (proj / "reviews.jsonl").read_text().splitlines()
    lines[99] = '{"txt": "typo in the field name"}'
    lines[150] = '{"text": 42}'
    (proj / "bad.jsonl").write_text("\n".join(lines) + "\n")
    assert_one_line_error(mlkit("job", "run", "--input", "bad.jsonl", "--output", "out", cwd=proj),
                          "line 100 (item 99) does not fit predictor.py:Predictor's Input: text: Field required", "no shard was written")
    assert not (proj / "out").exists()
    lines[99] = '{"text": "fixed"}'
    (proj / "bad.jsonl").write_text("\n".join(lines) + "\n")
    assert_one_line_error(mlkit("job", "run", "--input", "bad.jsonl", "--output", "out", cwd=proj),
                          "line 151 (item 150)", "text: Input should be a valid string (got 42)")
    assert not (proj / "out").exists()
    # A line that is not JSON at all stays the worker's, under on_error (skip in the example), as without a form.
    lines[150] = '{"text": "unterminated'
    (proj / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = mlkit("job", "run", "--input", "bad.jsonl", "--output", "out", "--json", cwd=proj, timeout=300)
    assert result.returncode == 0 and json.loads(result.stdout)["skipped"] == 1, result.stderr
