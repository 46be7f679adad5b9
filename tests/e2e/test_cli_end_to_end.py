"""The CLI end to end in a subprocess: exit codes, terminal text, JUnit, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.helpers import EXAMPLES, ROOT, run_cli
from torchvet import __version__

QUICKSTART = EXAMPLES / "quickstart"
BUGGY = EXAMPLES / "buggy"


def no_torch(code: str) -> None:
    """Run ``code`` in a fresh interpreter and assert it never imported torch."""
    script = code + "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_help_and_list_never_import_torch() -> None:
    no_torch("from torchvet.cli import main\nassert main(['--help']) == 0")
    no_torch("from torchvet.cli import main\nassert main(['run', '--help']) == 0")
    no_torch(f"from torchvet.cli import main\nassert main(['list', {str(QUICKSTART)!r}]) == 0")
    no_torch("from torchvet.cli import main\nassert main(['checks']) == 0")


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_list_text_and_json() -> None:
    proc = run_cli("list", str(QUICKSTART))
    assert proc.returncode == 0
    assert "model    cnn" in proc.stdout and "src/quickstart/models.py:" in proc.stdout
    data = json.loads(run_cli("list", str(QUICKSTART), "--json", "-k", "mlp").stdout)
    assert [d["name"] for d in data] == ["mlp"]
    assert data[0]["value"] == "quickstart.models:make_mlp" and data[0]["line"] > 0


def test_quickstart_passes_with_reports(tmp_path: Path) -> None:
    junit_path, json_path = tmp_path / "junit.xml", tmp_path / "report.json"
    proc = run_cli("run", str(QUICKSTART), "--junit", str(junit_path), "--json", str(json_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[4/4]" in proc.stdout and "failed" not in proc.stdout.split("=")[-1]
    xml = JUnitXml.fromfile(str(junit_path))
    suites = {s.name for s in xml}
    assert suites == {"mlp", "cnn", "tabular", "digits"}
    report = json.loads(json_path.read_text())
    statuses = {r["status"] for u in report["reports"] for r in u["results"]}
    assert statuses <= {"passed", "skipped"}
    assert report["seed"] == 0 and report["torch_version"]


def test_buggy_example_names_each_bug(tmp_path: Path) -> None:
    junit_path = tmp_path / "out.xml"
    proc = run_cli("run", str(BUGGY), "--junit", str(junit_path))
    assert proc.returncode == 1
    out = proc.stdout
    expectations = {
        "unused_layer · training.gradients": "projection.weight",
        "detached_branch · training.gradients": "backbone.0.weight",
        "nan_output · forward.finite": "log()",
        "float64_creep · forward.dtype": "float64",
        "softmax_over_batch · forward.batch_independence": "softmax(dim=0)",
        "dropout_in_eval · forward.determinism": "dropout",
    }
    for title, culprit in expectations.items():
        assert title in out, title
        block = out[out.index(title):].split("\n\n")[0]
        assert culprit in block, (title, block)
        assert "at examples/buggy/src/buggy/models.py:" in block or (
            "at src/buggy/models.py:" in block), block
    xml = JUnitXml.fromfile(str(junit_path))
    assert sum(s.failures for s in xml) >= len(expectations)


def write_project(root: Path, body: str, tool: str = "") -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "m.py").write_text(textwrap.dedent(body))
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "p"
        version = "0"
        [project.entry-points."torchvet.models"]
        a = "pkg.m:a"
        b = "pkg.m:b"
        c = "pkg.m:c"
        {tool}"""))
    return root


MODELS = """\
from torch import nn
import torch.nn.functional as F


class Prob(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=-1)


def a():
    return nn.Linear(4, 2)


def b():
    return {"model": Prob(), "loss": nn.CrossEntropyLoss()}


def c():
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
"""


def test_fail_on_warning_and_never(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", MODELS)
    args = ("run", str(root), "-k", "b", "--checks", "learning.output_vs_loss")
    assert run_cli(*args).returncode == 0
    assert run_cli(*args, "--fail-on", "warning").returncode == 1
    assert run_cli("run", str(BUGGY), "-k", "nan_output", "--fail-on", "never").returncode == 0


def test_shards_split_and_merge(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", MODELS)
    reports = []
    for index in (1, 2):
        out = tmp_path / f"shard{index}.json"
        proc = run_cli("run", str(root), "--shard", f"{index}/2", "--checks", "forward.runs",
                       "--json", str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        reports.append(out)
    names = [{u["name"] for u in json.loads(r.read_text())["reports"]} for r in reports]
    assert names[0] | names[1] == {"a", "b", "c"} and not names[0] & names[1]
    merged_json, merged_xml = tmp_path / "all.json", tmp_path / "all.xml"
    proc = run_cli("merge", *map(str, reports), "--json", str(merged_json), "--junit",
                   str(merged_xml))
    assert proc.returncode == 0, proc.stderr
    assert {u["name"] for u in json.loads(merged_json.read_text())["reports"]} == {"a", "b", "c"}
    assert len(list(JUnitXml.fromfile(str(merged_xml)))) == 3


@pytest.mark.parametrize(("args", "fragment"), [
    (("run", "{root}", "--checks", "forwrd"), "--checks forwrd matches no check"),
    (("run", "{root}", "--shard", "3/2"), "expected 1 <= i <= n"),
    (("run", "{root}", "--shard", "x"), "expected i/n"),
    (("run", "{root}", "-k", "zzz"), "no factory matches"),
    (("run", "{root}", "-j", "0"), "Invalid value for '-j'"),
    (("merge", "{root}/pyproject.toml"), "not a torchvet JSON report"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    root = write_project(tmp_path / "p", MODELS)
    proc = run_cli(*(a.format(root=root) for a in args))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert fragment in proc.stderr


def test_nothing_found_prints_the_snippet(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "empty"\nversion = "0"\n')
    proc = run_cli("run", str(tmp_path))
    assert proc.returncode == 2
    assert '[project.entry-points."torchvet.models"]' in proc.stderr
    assert run_cli("list", str(tmp_path)).returncode == 2


def test_invalid_config_names_file_and_key(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", MODELS, "[tool.torchvet.models.a]\nbatchsize = 4\n")
    proc = run_cli("run", str(root))
    assert proc.returncode == 2
    assert "pyproject.toml: [tool.torchvet.models.a] unknown key 'batchsize'" in proc.stderr
    assert "did you mean 'batch_size'" in proc.stderr
    bad_checks = write_project(tmp_path / "q", MODELS, '[tool.torchvet]\nchecks = ["nope"]\n')
    proc = run_cli("run", str(bad_checks))
    assert proc.returncode == 2 and "checks" in proc.stderr


def test_command_line_timeout_applies_to_units_without_their_own(tmp_path: Path) -> None:
    body = MODELS + "\n\ndef slow():\n    import threading\n    threading.Event().wait()\n"
    root = write_project(tmp_path / "p", body)
    text = (root / "pyproject.toml").read_text().replace('c = "pkg.m:c"', 'c = "pkg.m:slow"')
    (root / "pyproject.toml").write_text(text)
    proc = run_cli("run", str(root), "-k", "c", "--timeout", "2", "--json", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert "timed out after 2 s" in proc.stdout


def test_config_seed_and_checks_apply(tmp_path: Path) -> None:
    tool = '[tool.torchvet]\nseed = 5\nchecks = ["forward.runs"]\n'
    root = write_project(tmp_path / "p", MODELS, tool)
    out = tmp_path / "r.json"
    assert run_cli("run", str(root), "--json", str(out)).returncode == 0
    report = json.loads(out.read_text())
    assert report["seed"] == 5
    assert {r["id"] for u in report["reports"] for r in u["results"]} == {"forward.runs"}
