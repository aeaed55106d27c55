"""Loading a user's predictor class and calling it the same way whether it is sync or async.

The contract: `__init__(self, config, model_dir)`, `predict(self, payload)` (which may return a
generator to stream its result) and/or `generate(self, prompt, ...)` (text generation behind the
OpenAI routes: runtime/generate.py), and optionally
`predict_batch(self, payloads) -> list` (turns on server-side batching) and `warmup(self)`
(called before the server reports ready). Any of the methods may be `async def`; sync ones run in
a thread so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from . import input_form
from .errors import NotFound, PredictorFault, PredictorLoadError, PredictorRaised
from .tensor_formats import format_of


def load_class(spec: str, base_dir: Path | None = None, task: bool = False) -> type:
    """`predictor.py:Predictor` (a file, relative to base_dir) or `package.module:Predictor`; with `task`, a task's class (it has run())."""
    target, sep, class_name = spec.rpartition(":")
    if not sep or not target or not class_name:
        raise PredictorLoadError(f"--predictor {spec!r}: expected FILE.py:ClassName, e.g. predictor.py:Predictor")
    if target.endswith(".py"):
        path = (base_dir or Path.cwd()) / target
        if not path.is_file():
            raise PredictorLoadError(f"{path}: no such file (from --predictor {spec})")
        module_name = f"mlkit_predictor_{path.stem}"
        # The predictor's folder goes on sys.path so that it can import its own helper modules.
        sys.path.insert(0, str(path.parent.resolve()))
        try:
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # a predictor that exits on import must not end the server quietly
            raise PredictorLoadError(f"{path}: importing it failed: {describe(exc, path)}") from exc
        where = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except (Exception, SystemExit) as exc:
            raise PredictorLoadError(f"module {target}: importing it failed: {describe(exc, None)}") from exc
        where = f"module {target}"
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        raise PredictorLoadError(f"{where}: has no class {class_name!r} (classes defined there: {', '.join(found) or 'none'})")
    if task:
        if not callable(getattr(cls, "run", None)):
            raise PredictorLoadError(f"{where}: {class_name} has no run(self) method; a task's class is constructed, then run() is called once")
        return cast(type, cls)
    if not callable(getattr(cls, "predict", None)) and not callable(getattr(cls, "generate", None)):
        raise PredictorLoadError(
            f"{where}: {class_name} has no predict(self, payload) method (nor generate(self, prompt, ...), for text generation)"
        )
    try:
        format_of(cls)  # checked here so that a bad value is one line at start-up, not a 500 on every request
        input_form.of(cls)
    except PredictorFault as exc:
        raise PredictorLoadError(f"{where}: {exc}") from None
    return cast(type, cls)  # an attribute with a callable predict; construct() reports one that cannot be called as a class


def describe(exc: BaseException, where: Path | str | None) -> str:
    """The error and the line of the user's file it came from, on one line."""
    line = ""
    path = Path(where) if where is not None and str(where).endswith(".py") else None
    if path is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    if isinstance(exc, SyntaxError):
        line = f" (line {exc.lineno})"
        exc = SyntaxError(exc.msg)  # its str() would repeat the file and line
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message[:300]}{line}"


class Predictor:
    """A loaded predictor instance with uniform async entry points."""

    def __init__(self, instance: Any, executor: ThreadPoolExecutor):
        self.instance = instance
        self.executor = executor
        self._predict = getattr(instance, "predict", None)  # None for a generate()-only predictor
        self._batch = getattr(instance, "predict_batch", None)
        self.predict_is_async = inspect.iscoroutinefunction(self._predict)
        self.batch_is_async = self._batch is not None and inspect.iscoroutinefunction(self._batch)

    @property
    def batches(self) -> bool:
        return self._batch is not None

    async def predict(self, payload: Any) -> Any:
        if self._predict is None:
            raise NotFound("this predictor has only generate(): use /v1/completions or /v1/chat/completions")
        try:
            if self.predict_is_async:
                return await self._predict(payload)
            return await asyncio.get_running_loop().run_in_executor(self.executor, self._predict, payload)
        except Exception as exc:
            raise PredictorRaised() from exc

    async def predict_batch(self, payloads: list[Any]) -> list[Any]:
        assert self._batch is not None
        try:
            if self.batch_is_async:
                results = await self._batch(payloads)
            else:
                results = await asyncio.get_running_loop().run_in_executor(self.executor, self._batch, payloads)
            return one_per_payload(results, payloads)
        except Exception as exc:
            raise PredictorRaised() from exc

    # Called in the thread that runs them, with no event loop: the model process of a pod with fronts
    # runs a sync predictor in the thread that reads its links (runtime/model_process.py).
    def predict_sync(self, payload: Any) -> Any:
        assert self._predict is not None and not self.predict_is_async
        try:
            return self._predict(payload)
        except Exception as exc:
            raise PredictorRaised() from exc

    def predict_batch_sync(self, payloads: list[Any]) -> list[Any]:
        assert self._batch is not None and not self.batch_is_async
        try:
            return one_per_payload(self._batch(payloads), payloads)
        except Exception as exc:
            raise PredictorRaised() from exc

    async def warmup(self) -> None:
        warm = getattr(self.instance, "warmup", None)
        if warm is None:
            return
        if inspect.iscoroutinefunction(warm):
            await warm()
        else:
            await asyncio.get_running_loop().run_in_executor(self.executor, warm)


def one_per_payload(results: Any, payloads: list[Any]) -> list[Any]:
    """predict_batch's results as a list, one per payload (a TypeError saying so otherwise); a list is not copied."""
    if not isinstance(results, (list, tuple)) or len(results) != len(payloads):
        got = f"{len(results)} results" if isinstance(results, (list, tuple)) else type(results).__name__
        raise TypeError(f"predict_batch must return a list with one result per payload: got {got} for {len(payloads)} payloads")
    return results if isinstance(results, list) else list(results)


def construct(cls: type, config: dict[str, Any], model_dir: str, where: str) -> Any:
    if not Path(model_dir).exists():
        raise PredictorLoadError(f"--model-dir {model_dir}: no such folder")
    try:
        return cls(config, model_dir)
    except (Exception, SystemExit) as exc:
        raise PredictorLoadError(f"{where}: {cls.__name__}(config, model_dir) failed: {describe(exc, where)}") from exc
