"""The compute floor: the tensor work the default catalogue performs, and nothing else.

Two steps, each in its own process:

``count``
    Runs the default catalogue in-process (the same ``UnitRun`` the workers use) on every
    unit of a project, with instruments that record,
    in order, every *model build* (factory call), every *top-level model forward* (train or
    eval mode, grad on or off, batch size, device, autocast dtype, inside a ``step`` or
    not), every *backward* (``Tensor.backward`` / ``torch.autograd.backward``), every
    ``torch.autograd.grad`` call, every *optimizer step* and every *dataset sample load*
    (``__getitem__``). The counts therefore come from the checks as they are, never from a
    guess. Output: one JSON file of events per unit, with the unit's memory as the worker
    measures it (its weights, the pre-check baseline, each check's peak).

``replay``
    One process, ``import torch`` once (not timed), then for every unit performs exactly
    those events with plain torch: the builds, the forwards in the recorded mode (meta
    device and autocast included), the backwards, the ``autograd.grad`` calls, the Adam
    steps and the sample loads. Prints the wall time of that work.

What the floor leaves out is what torchvet adds on top of the tensor work: processes,
imports beyond ``torch``, deep copies, seeding, comparisons, ``torch.save``/``load``,
op tracing, spawn-worker start-up in ``data.workers``, reporting.

    python bench/floor.py count PROJECT EVENTS.json [-k NAME ...]
    python bench/floor.py replay PROJECT EVENTS.json [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "runner"))

from torchvet.project.discovery import discover  # noqa: E402
from torchvet.unit.optim import Adam, StatelessAdam  # noqa: E402

OPTIMIZERS = {"Adam": Adam, "StatelessAdam": StatelessAdam}

Event = dict[str, Any]


# --------------------------------------------------------------------------- counting


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []


class Recorder:
    """Patches torch entry points for the duration of one unit and records events."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.model_types: set[type] = set()
        self.depth = 0
        self.in_step = 0
        self.in_backward = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        recorder = self
        original_call = nn.Module.__call__
        original_backward = torch.Tensor.backward
        original_autograd_backward = torch.autograd.backward
        original_grad = torch.autograd.grad
        original_steps = {cls: cls.__dict__["step"] for cls in OPTIMIZERS.values()}

        def call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            top = recorder.depth == 0 and type(module) in recorder.model_types
            if top:
                first = _first_tensor((args, kwargs))
                param = next(module.parameters(), None)
                device = param.device.type if param is not None else "cpu"
                autocast = None
                if torch.is_autocast_enabled(device if device != "meta" else "cpu"):
                    autocast = str(torch.get_autocast_dtype(
                        device if device != "meta" else "cpu")).replace("torch.", "")
                recorder.events.append({
                    "op": "forward",
                    "train": module.training,
                    "grad": torch.is_grad_enabled(),
                    "batch": int(first.shape[0]) if first is not None and first.dim() else 1,
                    "device": device,
                    "autocast": autocast,
                    "in_step": recorder.in_step > 0,
                    "input_grad": any(t.requires_grad for t in _tensors((args, kwargs))),
                })
            recorder.depth += 1
            try:
                return original_call(module, *args, **kwargs)
            finally:
                recorder.depth -= 1

        def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if recorder.in_backward == 0:
                recorder.events.append({"op": "backward"})
            recorder.in_backward += 1
            try:
                return original_backward(self, *args, **kwargs)
            finally:
                recorder.in_backward -= 1

        def autograd_backward(*args: Any, **kwargs: Any) -> Any:
            if recorder.in_backward == 0:
                recorder.events.append({"op": "backward"})
            recorder.in_backward += 1
            try:
                return original_autograd_backward(*args, **kwargs)
            finally:
                recorder.in_backward -= 1

        def grad(*args: Any, **kwargs: Any) -> Any:
            recorder.events.append({"op": "grad"})
            return original_grad(*args, **kwargs)

        def counted_step(cls: type) -> Any:
            def step(self: Adam, *args: Any, **kwargs: Any) -> Any:
                recorder.events.append({"op": "step", "optimizer": cls.__name__})
                return original_steps[cls](self, *args, **kwargs)
            return step

        def optim_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
            recorder.events.append({"op": "step", "optimizer": type(optimizer).__name__})

        nn.Module.__call__ = call  # type: ignore[method-assign]
        torch.Tensor.backward = backward  # type: ignore[method-assign]
        torch.autograd.backward = autograd_backward
        torch.autograd.grad = grad
        for cls in OPTIMIZERS.values():
            cls.step = counted_step(cls)  # type: ignore[method-assign]
        handle = None
        if "torch.optim" in sys.modules:
            from torch.optim.optimizer import register_optimizer_step_post_hook

            handle = register_optimizer_step_post_hook(optim_hook)
        try:
            yield
        finally:
            nn.Module.__call__ = original_call  # type: ignore[method-assign]
            torch.Tensor.backward = original_backward  # type: ignore[method-assign]
            torch.autograd.backward = original_autograd_backward
            torch.autograd.grad = original_grad
            for cls, original_step in original_steps.items():
                cls.step = original_step  # type: ignore[method-assign]
            if handle is not None:
                handle.remove()

    def wrap_factory(self, factory: Callable[[], Any]) -> Callable[[], Any]:
        recorder = self

        def built() -> Any:
            recorder.events.append({"op": "build"})
            depth, recorder.depth = recorder.depth, 1  # modules called while building
            try:
                obj = factory()
            finally:
                recorder.depth = depth
            model = _model_of(obj)
            if model is not None:
                recorder.model_types.add(type(model))
            if isinstance(obj, dict) and callable(obj.get("step")):
                obj = {**obj, "step": recorder.wrap_step(obj["step"])}
            dataset = _dataset_of(obj)
            if dataset is not None:
                recorder.watch_dataset(type(dataset))
            return obj

        built.__name__ = getattr(factory, "__name__", "factory")
        built.__qualname__ = getattr(factory, "__qualname__", built.__name__)
        built.__module__ = getattr(factory, "__module__", __name__)
        return built

    def wrap_step(self, step: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        def counted(*args: Any, **kwargs: Any) -> Any:
            recorder.in_step += 1
            try:
                return step(*args, **kwargs)
            finally:
                recorder.in_step -= 1

        return counted

    def watch_dataset(self, cls: type) -> None:
        if getattr(cls.__getitem__, "_floor_counted", False):
            return
        recorder = self
        original = cls.__getitem__

        def getitem(dataset: Any, index: Any) -> Any:
            recorder.events.append({"op": "sample"})
            return original(dataset, index)

        getitem._floor_counted = True  # type: ignore[attr-defined]
        getitem._floor_original = original  # type: ignore[attr-defined]
        cls.__getitem__ = getitem  # type: ignore[method-assign]


def _model_of(obj: Any) -> nn.Module | None:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("model"), nn.Module):
        return obj["model"]
    return None


def _dataset_of(obj: Any) -> Any:
    from torch.utils.data import DataLoader, Dataset

    value = obj.get("dataset") if isinstance(obj, dict) else obj
    if isinstance(value, DataLoader):
        value = value.dataset
    return value if isinstance(value, Dataset) else None


def _restore_datasets() -> None:
    from torch.utils.data import Dataset

    stack: list[type] = [Dataset]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        original = getattr(cls.__dict__.get("__getitem__"), "_floor_original", None)
        if original is not None:
            cls.__getitem__ = original  # type: ignore[method-assign]


def load_factory(value: str) -> Callable[[], Any]:
    module, _, attr = value.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def units(project: str, only: list[str]) -> list[Any]:
    proj, factories = discover(project, include_installed=False)
    for entry in reversed(proj.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return [f for f in factories if not only or f.name in only]


def run_unit(factory: Any, fn: Callable[[], Any], config: Any, seed: int
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default catalogue on one unit in-process, as a worker runs it: the results by
    check id, and its memory (weights, the pre-check baseline, each check's peak)."""
    from torchvet.checks.suite import SUITE
    from torchvet.engine import protocol
    from torchvet.engine.jobs import Job
    from torchvet.unit.worker import UnitRun

    results: dict[str, Any] = {}
    memory: dict[str, Any] = {"peaks": {}}

    def collect(message: Any) -> None:
        if isinstance(message, protocol.Footprint):
            memory.update(weights=message.weights, baseline=message.baseline)
        elif isinstance(message, protocol.Finished):
            results[message.result.id] = message.result
            memory["peaks"][message.result.id] = message.result.peak_memory

    job = Job(factory=factory, config=config, seed=seed, project_dirs=(), report_root=".")
    UnitRun(job, collect, SUITE, factory_fn=fn).run()
    return results, memory


def count(project: str, out: str, only: list[str]) -> None:
    from torchvet.project.config import load_config
    from torchvet.results import Status

    proj, _ = discover(project, include_installed=False)
    config = load_config(proj.pyproject, proj.data)
    report: dict[str, Any] = {}
    for factory in units(project, only):
        recorder = Recorder()
        fn = recorder.wrap_factory(load_factory(factory.value))
        unit_config = config.for_unit(factory.kind, factory.name, {})
        with recorder.installed():
            results, memory = run_unit(factory, fn, unit_config, config.seed or 0)
        _restore_datasets()
        bad = {k: r.status.value for k, r in results.items()
               if r.status not in (Status.PASSED, Status.SKIPPED, Status.WARNED)}
        ops = Counter(e["op"] for e in recorder.events)
        report[factory.name] = {
            "kind": factory.kind,
            "value": factory.value,
            "checks": sorted(results),
            "not_passed": bad,
            "counts": dict(ops),
            "memory": memory,
            "events": recorder.events,
        }
        print(f"{factory.name:<22} {dict(ops)}", file=sys.stderr)
    Path(out).write_text(json.dumps(report, indent=1))


# --------------------------------------------------------------------------- replaying


def _reduce(out: Any) -> torch.Tensor:
    """A scalar from every floating output leaf (what a backward needs, nothing more)."""
    total: torch.Tensor | None = None
    for t in _tensors(out if not hasattr(out, "items") else dict(out)):
        if t.is_floating_point() and t.requires_grad:
            term = t.float().mean()
            total = term if total is None else total + term
    assert total is not None, "no differentiable output to reduce"
    return total


class Replayer:
    """Performs one unit's recorded events with plain torch."""

    def __init__(self, factory: Callable[[], Any], kind: str, seed: int) -> None:
        self.factory = factory
        self.kind = kind
        self.seed = seed
        self.spec: Any = None
        self.data: Any = None
        self.models: dict[str, nn.Module] = {}
        self.inputs: dict[tuple[str, int, bool], Any] = {}
        self.optimizer: Adam | None = None
        self.last: Any = None
        self.last_inputs: list[torch.Tensor] = []
        self.last_model: nn.Module = nn.Module()
        self.sample_index = 0

    def build(self) -> None:
        obj = self.factory()
        if self.spec is not None or self.data is not None:
            return  # a rebuild: the factory call is the work
        from torchvet.project.config import UnitConfig
        from torchvet.unit.spec import normalize_dataset, normalize_model

        if self.kind == "model":
            self.spec = normalize_model(obj, "unit", UnitConfig(), self.seed)
            self.models["cpu"] = self.spec.model
            self.data = self.spec.data
        else:
            self.data, _ = normalize_dataset(obj, UnitConfig())

    def model_on(self, device: str) -> nn.Module:
        if device not in self.models:
            self.models[device] = copy.deepcopy(self.models["cpu"]).to(device)
        return self.models[device]

    def make_inputs(self, batch: int, device: str, input_grad: bool) -> Any:
        key = (device, batch, input_grad)
        if key not in self.inputs:
            made = self.spec.inputs.make(batch, 0).map(lambda t: t.to(device))
            if input_grad:
                made = made.map(lambda t: t.detach().clone().requires_grad_(True)
                                if t.is_floating_point() else t)
            self.inputs[key] = made
        return self.inputs[key]

    def forward(self, event: Event) -> None:
        device = event["device"]
        model = self.model_on(device)
        model.train(event["train"])
        inputs = self.make_inputs(event["batch"], device, event["input_grad"])
        autocast: Any = contextlib.nullcontext()
        if event["autocast"]:
            autocast = torch.autocast("cpu" if device == "meta" else device,
                                      dtype=getattr(torch, event["autocast"]))
        with torch.set_grad_enabled(event["grad"]), autocast:
            if event["in_step"]:
                self.last = self.spec.step(model, inputs.user_form())
            else:
                self.last = model(*inputs.args, **inputs.kwargs)
        self.last_inputs = [t for _, t in inputs.tensors() if t.requires_grad]
        self.last_model = model

    def backward(self) -> None:
        _reduce(self.last).backward()

    def grad(self) -> None:
        """``torch.autograd.grad`` as a check called it: with respect to the inputs, or,
        where none requires grad (a check that asks about parameters), the parameters."""
        out = _reduce(self.last)
        leaves = self.last_inputs or [p for p in self.last_model.parameters()
                                      if p.requires_grad]
        if out.requires_grad and leaves:
            torch.autograd.grad(out, leaves, allow_unused=True)

    def step(self, event: Event) -> None:
        if self.optimizer is None:
            kind = OPTIMIZERS.get(event.get("optimizer", "Adam"), Adam)
            self.optimizer = kind(self.models["cpu"].parameters(), lr=1e-3)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def sample(self) -> None:
        dataset = self.data.dataset
        dataset[self.sample_index % len(dataset)]
        self.sample_index += 1

    def run(self, events: list[Event]) -> None:
        torch.manual_seed(self.seed)
        for event in events:
            op = event["op"]
            if op == "build":
                self.build()
            elif op == "forward":
                self.forward(event)
            elif op == "backward":
                self.backward()
            elif op == "grad":
                self.grad()
            elif op == "step":
                self.step(event)
            elif op == "sample":
                self.sample()


def replay(project: str, events_path: str, threads: int) -> None:
    recorded = json.loads(Path(events_path).read_text())
    torch.set_num_threads(threads)
    factories = {f.name: load_factory(f.value) for f in units(project, list(recorded))}
    started = time.perf_counter()
    per_unit = {}
    for name, unit in recorded.items():
        unit_started = time.perf_counter()
        Replayer(factories[name], unit["kind"], 0).run(unit["events"])
        per_unit[name] = time.perf_counter() - unit_started
    total = time.perf_counter() - started
    print(json.dumps({"seconds": total, "units": per_unit}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("count")
    c.add_argument("project")
    c.add_argument("events")
    c.add_argument("-k", dest="only", action="append", default=[])
    r = sub.add_parser("replay")
    r.add_argument("project")
    r.add_argument("events")
    r.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.command == "count":
        count(args.project, args.events, args.only)
    else:
        replay(args.project, args.events, args.threads)


if __name__ == "__main__":
    main()
