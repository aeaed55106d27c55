"""The torch helpers with a real model: every save format loads, and a served model answers what it computes."""

from __future__ import annotations

import httpx
import pytest

torch = pytest.importorskip("torch")

from mlkit_runtime import torch_utils  # noqa: E402

PREDICTOR = '''
import torch
from mlkit_runtime.torch_utils import configure_threads, infer, load_model, pick_device, warmup


class Predictor:
    def __init__(self, config, model_dir):
        configure_threads(1)
        self.device = pick_device("cpu")
        self.model = load_model(model_dir, self.device)

    def warmup(self):
        warmup(self.model, torch.zeros(1, 4))

    def predict_batch(self, payloads):
        x = torch.tensor([p["x"] for p in payloads], dtype=torch.float32, device=self.device)
        return infer(self.model, x).tolist()

    def predict(self, payload):
        return self.predict_batch([payload])[0]
'''


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


@pytest.mark.parametrize("fmt", ["torchscript", "module", "state_dict"])
def test_load_model_formats(tmp_path, fmt):
    model = small_model()
    if fmt == "torchscript":
        torch.jit.script(model).save(str(tmp_path / "model.ts"))
        loaded = torch_utils.load_model(tmp_path, torch.device("cpu"))
    elif fmt == "module":
        torch.save(model, tmp_path / "model.pt")
        loaded = torch_utils.load_model(tmp_path, torch.device("cpu"))
    else:
        torch.save(model.state_dict(), tmp_path / "model.pt")
        loaded = torch_utils.load_model(
            tmp_path, torch.device("cpu"), build=lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        )
    x = torch.randn(3, 4)
    assert torch.allclose(loaded(x), model(x))
    assert not loaded.training


def test_load_model_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file .looked for model.ts"):
        torch_utils.load_model(tmp_path)
    torch.save(small_model().state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="holds a state dict; pass build="):
        torch_utils.load_model(tmp_path)


def test_device_threads_and_cpu_limit(monkeypatch):
    monkeypatch.setenv("MLKIT_DEVICE", "cpu")
    assert torch_utils.pick_device().type == "cpu"
    assert torch_utils.cpu_limit() >= 1
    assert torch_utils.configure_threads(1) == 1 and torch.get_num_threads() == 1


def test_a_served_torch_model_answers_what_it_computes(tmp_path):
    model = small_model()
    torch.jit.script(model).save(str(tmp_path / "model.ts"))
    (tmp_path / "torch_predictor.py").write_text(PREDICTOR)
    from tests.runtime.conftest import start, stop

    server = start(tmp_path, f"{tmp_path / 'torch_predictor.py'}:Predictor")  # an absolute path replaces the predictors folder
    try:
        rows = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0]]
        got = [httpx.post(server.url + "/predict", json={"x": r}).json() for r in rows]
        expected = model(torch.tensor(rows)).tolist()
        assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-6)
    finally:
        stop(server)
