"""data.workers: what does not pickle is named by path with its fix, without starting a
worker; spawn-like workers load batches that match the main process, or the state their
pickle does not carry is named; workers end with their unit."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import data_fixtures as fx
from tests.helpers import FIXTURES, assert_status, assert_where, line_in, run_cli, verdict
from torchvet.checks.catalogue import CATALOGUE
from torchvet.checks.data import workers
from torchvet.results import Status


def test_lambda_transform_warns_without_spawning(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_spawn(*args: Any) -> Any:
        raise AssertionError("a pickling failure must not start workers")

    monkeypatch.setattr(workers, "_spawn_compare", no_spawn)
    result = verdict(fx.lambda_transform, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.transform is a lambda",
                  "cannot be pickled", "spawn", "module-level function")
    assert_where(result, "self.transform = lambda x: x * 2.0  # BUG: not picklable",
                 fx.FIXTURE_FILE)


def test_lambda_inside_a_transform_pipeline_is_named_by_path() -> None:
    result = verdict(fx.nested_lambda, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.transform.transforms[1] is a lambda")
    assert_where(result, "lambda x: x + 1.0])  # BUG: second step", fx.FIXTURE_FILE)


def test_lambda_collate_fn_warns() -> None:
    result = verdict(fx.lambda_collate, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "the collate_fn is a lambda", "module-level function")


def test_open_file_handle_warns_with_lazy_open_fix(tmp_path: Path) -> None:
    path = tmp_path / "records.bin"
    path.write_bytes(b"\0" * 64)

    def factory() -> Any:
        dataset = fx.TupleSamples(size=4)
        dataset.handle = path.open("rb")  # type: ignore[attr-defined]
        return dataset

    result = verdict(factory, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.handle is an open", "open it lazily")


def test_workers_skip_slow_samples_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "WORKER_LOAD_BUDGET", 0.0)
    result = verdict(fx.tuple_samples, "data.workers", kind="dataset")
    assert_status(result, Status.SKIPPED, "the dataset and collate_fn pickle",
                  "s each to load", "budget")


def test_workers_skip_large_datasets_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "WORKER_MAX_BYTES", 16)
    result = verdict(fx.tuple_samples, "data.workers", kind="dataset")
    assert_status(result, Status.SKIPPED, "pickle", "spawn worker comparison is skipped")


@pytest.mark.slow
def test_spawn_workers_match_a_randomly_augmented_dataset() -> None:
    result = verdict(fx.augmented, "data.workers", kind="dataset")
    assert_status(result, Status.PASSED, "a spawn worker in",
                  "its batches match the main-process batches", "[0] random, compared by shape")
    assert result.duration < CATALOGUE["data.workers"].budget


@pytest.mark.slow
def test_spawn_workers_without_the_factorys_global_state() -> None:
    result = verdict(fx.needs_global, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "spawn-context DataLoader worker",
                  "AssertionError: VOCABULARY is not loaded", "state its pickle does not carry")
    assert_where(result, 'assert VOCABULARY is not None, "VOCABULARY is not loaded"',
                 fx.FIXTURE_FILE)


@pytest.mark.slow
def test_spawn_workers_see_different_values() -> None:
    result = verdict(fx.reads_mutated_global, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset[0][0] differs between spawn workers and the "
                  "main process")


@pytest.mark.slow
def test_spawn_workers_on_a_stream() -> None:
    result = verdict(fx.stream, "data.workers", kind="dataset")
    assert_status(result, Status.PASSED, "its stream batch has the same layout")


@pytest.mark.slow
def test_spawn_workers_import_the_dataset_from_the_projects_import_roots(
        tmp_path: Path) -> None:
    project = FIXTURES / "data_project"
    with pytest.raises(ImportError):
        __import__("vetdata")  # only the project's src/ root makes it importable
    report = tmp_path / "report.json"
    proc = run_cli("run", str(project), "--checks", "data.workers", "-j", "1",
                   "--exclude", "stuck_pairs", "--json", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {
        unit["name"]: {r["id"]: r for r in unit["results"]}
        for unit in json.loads(report.read_text())["reports"]
    }
    pairs = results["pairs"]["data.workers"]
    assert pairs["status"] == "passed", pairs
    # forked from the run's fork server (torch imported, no project module), not spawned
    assert "a fresh (spawn-like) worker in" in pairs["message"]
    scaled = results["global_pairs"]["data.workers"]
    assert scaled["status"] == "warned", scaled
    assert "AssertionError: SCALE is not set" in scaled["message"]
    assert "state its pickle does not carry" in scaled["message"]
    lam = results["lambda_pairs"]["data.workers"]
    assert lam["status"] == "warned", lam
    assert "dataset.transform is a lambda" in lam["message"]
    source = project / "src" / "vetdata" / "__init__.py"
    assert lam["file"] == "tests/fixtures/data_project/src/vetdata/__init__.py"
    assert lam["line"] == line_in(source, "transform=lambda x: x / 10")


@pytest.mark.slow
def test_fork_server_workers_end_with_their_unit(tmp_path: Path) -> None:
    """A DataLoader worker forked by the fork server is outside the unit's process group:
    when a timeout kills the unit, the worker must still go, not linger after the run."""
    pidfile = tmp_path / "worker.pids"
    pidfile.touch()
    proc = run_cli("run", str(FIXTURES / "data_project"), "--checks", "data.workers",
                   "-k", "stuck_pairs", "--timeout", "6", "-j", "1",
                   env={"VETDATA_PIDFILE": str(pidfile)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timed out" in proc.stdout or "timeout" in proc.stdout, proc.stdout
    pids = [int(line) for line in pidfile.read_text().split()]
    assert pids, "the stuck dataset never ran in a worker"
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in pids if _alive(pid)]
    assert not alive, f"DataLoader workers outlived the run: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
