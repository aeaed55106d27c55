"""A predictor's `Input` model (runtime/input_form.py): POST /predict answers 400 naming the field for a JSON
payload the model refuses; the predictor gets the payload as sent; a bad `Input` stops start-up in one line."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from mlkit_runtime import input_form
from tests.conftest import assert_one_line_error
from tests.runtime.conftest import PREDICTORS


@pytest.mark.parametrize("fronts", [[], ["--fronts", "2"]], ids=["one-process", "two-fronts"])
def test_predict_checks_json_payloads_against_the_input_model(serve, fronts):
    # With --fronts the class (and its Input) lives in the model process: the front asks it there.
    s = serve("formed.py:Review", *fronts)
    ok = httpx.post(s.url + "/predict", json={"text": "great", "extra": 1})
    assert ok.status_code == 200 and ok.json() == {"got": {"text": "great", "extra": 1}}, "the predictor gets the payload as sent"
    for body, said in [
        ({"stars": 3}, "text: Field required"),
        ({"text": "x" * 21}, "text: String should have at most 20 characters"),
        ({"text": "ok", "stars": 9}, "stars: Input should be less than or equal to 5 (got 9)"),
        (["text"], "the payload: Input should be a valid dictionary or instance of Input"),
    ]:
        r = httpx.post(s.url + "/predict", json=body)
        assert r.status_code == 400 and said in r.json()["error"], (body, r.text)
        assert r.json()["error"].startswith("the payload does not fit the predictor's Input: ")
    raw = httpx.post(s.url + "/predict", content=b"\x00\x01", headers={"Content-Type": "application/octet-stream"})
    assert raw.status_code == 200, "bytes are not JSON: the form does not apply"


@pytest.mark.parametrize("fronts", [[], ["--fronts", "2"]], ids=["one-process", "two-fronts"])
def test_kserve_v1_checks_each_instance_against_the_input_model(serve, fronts):
    # Each of `instances` is one payload (what POST /predict takes whole): the Input is an instance's form.
    s = serve("formed.py:Review", *fronts)
    url = s.url + "/v1/models/echo:predict"
    ok = httpx.post(url, json={"instances": [{"text": "great"}, {"text": "fine", "stars": 4, "extra": 1}]})
    assert ok.status_code == 200 and ok.json() == {"predictions": [{"got": {"text": "great"}}, {"got": {"text": "fine", "stars": 4, "extra": 1}}]}
    r = httpx.post(url, json={"instances": [{"text": "great"}, {"text": "ok", "stars": 9}, {"stars": 1}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "instances[1] does not fit the predictor's Input: stars: Input should be less than or equal to 5 (got 9)"
    assert httpx.post(url, json={"instances": ["text"]}).json()["error"].startswith(
        "instances[0] does not fit the predictor's Input: the payload: Input should be a valid dictionary")


def test_an_input_that_is_not_a_pydantic_model_stops_start_up_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--port", "0", "--predictor", f"{PREDICTORS}/formed.py:BadInput", "--model-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert_one_line_error(result, "formed.py: BadInput.Input is {'text': 'str'}; it must be a pydantic model class", code=1)


def test_problem_is_one_bounded_line():
    from tests.runtime.predictors.formed import Review

    assert input_form.problem(Review.Input, {"text": "fine"}) is None
    long = input_form.problem(Review.Input, {"text": "a\nb" * 1000})
    assert long is not None and "\n" not in long and len(long) < 200, long
