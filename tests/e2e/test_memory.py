"""Memory-aware execution in the action's image under a container memory limit.

tests/fixtures/action/memory-pressure holds four healthy models of 0.24 GB of weights
each. Under ``docker run --memory 2g`` one unit's checks fit, two units' do not: before
memory-aware scheduling the default ``-j`` ran two at once and the OOM killer took one
(its checks became errors naming SIGKILL). Now the scheduler reads the cgroup's limit,
runs the units one at a time, and every check of every unit completes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.action import copy_fixture

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LIMIT = "2g"


def test_units_that_fit_one_at_a_time_all_complete_under_the_memory_limit(
        client: Any, image: str, tmp_path: Path) -> None:
    repo = copy_fixture("memory-pressure", tmp_path / "repo")
    repo.chmod(0o777)
    container = client.containers.run(
        image, entrypoint=["torchvet"],
        command=["run", "/repo", "--json", "/repo/report.json", "--no-github"],
        detach=True, network_mode="none", mem_limit=LIMIT, memswap_limit=LIMIT,
        volumes={str(repo): {"bind": "/repo", "mode": "rw"}})
    try:
        code = container.wait(timeout=1500)["StatusCode"]
        oom_killed = container.attrs["State"]["OOMKilled"] or bool(
            client.api.inspect_container(container.id)["State"]["OOMKilled"])
        log = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    assert code == 0, log[-6000:]
    assert not oom_killed, log[-6000:]
    report = json.loads((repo / "report.json").read_text())
    units = {u["name"]: u for u in report["reports"]}
    assert set(units) == {"wide_a", "wide_b", "wide_c", "wide_d"}
    for name, unit in units.items():
        statuses = {r["id"]: r["status"] for r in unit["results"]}
        assert set(statuses.values()) <= {"passed", "skipped"}, (name, statuses)
        assert statuses["training.update"] == "passed", (name, statuses)
        assert statuses["state.roundtrip"] == "passed", (name, statuses)
        memory_skips = [r["message"] for r in unit["results"] if "for memory" in r["message"]]
        assert memory_skips == [], (name, memory_skips)
        assert unit["peak_memory"] > 240 * 10**6, "the unit's peak holds at least its weights"
    assert "of memory usable" in log
