"""options: the fail-on and device choices read, print and compare as their text, and
the one record of run options leaves to the project what it does not say."""

from __future__ import annotations

import json

from torchvet.options import Device, FailOn, RunOptions


def test_the_choices_are_their_text_wherever_they_go() -> None:
    assert FailOn.values() == ("failure", "warning", "never")
    assert Device.values() == ("cpu", "cuda", "auto")
    assert FailOn.WARNING == "warning" and FailOn("never") is FailOn.NEVER
    assert f"{Device.CUDA}" == str(Device.CUDA) == "cuda"
    assert f"fail-on {FailOn.NEVER:>6}" == "fail-on  never"
    assert json.dumps([FailOn.FAILURE]) == '["failure"]'


def test_unset_options_are_left_to_the_project() -> None:
    options = RunOptions()
    assert (options.seed, options.fail_on, options.jobs, options.timeout) == (None, None, 0, None)
    assert options.run_seed == 0 and options.run_fail_on is FailOn.FAILURE
    assert RunOptions(seed=0, fail_on=FailOn.NEVER).run_seed == 0
    assert RunOptions(fail_on=FailOn.NEVER).run_fail_on is FailOn.NEVER
    assert options.device is Device.CPU
