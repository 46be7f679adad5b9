"""portability.device and portability.autocast: tensors left behind on the CPU and
low-precision overflows are caught, named and located; data-dependent ops skip; healthy
models (0-dim CPU constants, CPU indices, packed sequences included) pass."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.fixtures import models_portability as models
from tests.fixtures import models_real as real
from tests.helpers import assert_status, line_in, verdict, vet
from torchvet.checks import portability
from torchvet.checks.inline import check_inline
from torchvet.results import Status

FIXTURE_FILE = Path(models.__file__)
DEVICE = "portability.device"
AUTOCAST = "portability.autocast"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (torch.cuda.is_available() is False)")


def line_of(marker: str) -> int:
    return line_in(FIXTURE_FILE, marker)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("factory", models.HEALTHY, ids=lambda f: f.__name__)
def test_healthy_models_pass_both_checks(factory: Any) -> None:
    results = vet(factory, [DEVICE, AUTOCAST])
    assert_status(results[DEVICE], Status.PASSED, "meta device")
    assert_status(results[AUTOCAST], Status.PASSED, "bfloat16 (cpu)")


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_real_architectures_pass_both_checks(name: str) -> None:
    results = vet(real.REAL_MODELS[name], [DEVICE, AUTOCAST])
    assert_status(results[DEVICE], Status.PASSED)
    assert_status(results[AUTOCAST], Status.PASSED)


def test_torch_internal_value_probe_does_not_stop_the_meta_run() -> None:
    """nn.TransformerEncoder compares the mask with a causal one (a value probe): the
    meta run answers "not causal" and goes on instead of skipping."""
    result = verdict(models.transformer_mask_probe, DEVICE)
    assert_status(result, Status.PASSED, "eval and train forwards")


def test_validation_probe_inside_torch_does_not_stop_the_meta_run() -> None:
    result = verdict(models.gaussian_head, DEVICE)
    assert_status(result, Status.PASSED, "eval and train forwards")
    assert "value probes inside torch" in result.details


def test_zero_dim_cpu_constants_mix_like_on_cuda() -> None:
    assert_status(verdict(models.zero_dim_constant, DEVICE), Status.PASSED)


def test_values_of_model_inputs_are_known_on_meta() -> None:
    """lengths.cpu() (for packing) and F.one_hot(labels) need values; a model input's
    values are known, so neither stops the check, and one_hot's result stays on device."""

    class OneHot(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 2)

        def forward(self, labels: torch.Tensor) -> torch.Tensor:
            return self.fc(F.one_hot(labels).float())

    result = verdict(lambda: {"model": OneHot(), "inputs": torch.tensor([0, 4, 2])}, DEVICE)
    assert_status(result, Status.PASSED)
    assert_status(verdict(real.lstm, DEVICE), Status.PASSED)


# --------------------------------------------------------------------------- bugs

DEVICE_BUGS = {
    "plain_list": (("self.layers is a plain list of 3 modules", "use nn.ModuleList",
                    "linear()"), "# BUG: plain-list"),
    "plain_tensor_attribute": (("self.mask is a plain tensor attribute",
                                "it does not move with .to(device)",
                                "use self.register_buffer('mask', ...)", "mul()"),
                               "# BUG: tensor-attribute"),
    "mask_without_device": (("torch.ones()", "pass device=x.device", "masked_fill()",
                             f"{FIXTURE_FILE.name}:{line_of('# BUG: no-device')}"),
                            "# BUG: no-device"),
    "from_numpy": (("torch.from_numpy()", ".to(x.device)"), "# BUG: from-numpy"),
    "output_on_cpu": (('out["valid"]', "stays on the CPU", "torch.ones()"),
                      "# BUG: cpu-output"),
    "rnn_hidden_on_cpu": (("torch.zeros()", "pass device=x.device", "gru()"),
                          "# BUG: hidden-state"),
    # meta itself lets matmul mix devices (CUDA does not): the op tracer catches it
    "matmul_cpu_weight": (("self.rotation is a plain tensor attribute", "matmul()"),
                          "# BUG: matmul-attribute"),
}


@pytest.mark.parametrize("name", sorted(DEVICE_BUGS))
def test_device_bugs_are_caught_and_located(name: str) -> None:
    fragments, marker = DEVICE_BUGS[name]
    result = verdict(getattr(models, name), DEVICE)
    assert_status(result, Status.FAILED, *fragments)
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of(marker))


def test_item_in_forward_skips_naming_the_op_and_line() -> None:
    result = verdict(models.item_in_forward, DEVICE)
    assert_status(result, Status.SKIPPED, "item()",
                  f"{FIXTURE_FILE.name}:{line_of('# MARK: item')}", "--device cuda")


def test_data_dependent_branch_skips() -> None:
    result = verdict(models.data_dependent_branch, DEVICE)
    assert_status(result, Status.SKIPPED, "__bool__()", "needs values")


def test_bug_before_a_data_dependent_op_still_fails() -> None:
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.offset = torch.ones(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x) + self.offset
            return h / h.abs().max().item()

    result = verdict(lambda: {"model": Both(), "inputs": torch.randn(2, 4)}, DEVICE)
    assert_status(result, Status.FAILED, "self.offset is a plain tensor attribute")


def test_bug_only_in_train_mode_is_caught() -> None:
    class TrainNoise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            if self.training:
                h = h + 0.1 * torch.randn(h.shape)  # no device=
            return h

    result = verdict(lambda: {"model": TrainNoise(), "inputs": torch.randn(2, 4)}, DEVICE)
    assert_status(result, Status.FAILED, "torch.randn()", "train forward")


def test_indexing_a_cpu_tensor_with_device_indices_fails() -> None:
    class Table(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.randn(10, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table[ids]

    result = verdict(lambda: {"model": Table(), "inputs": torch.tensor([1, 2])}, DEVICE)
    assert_status(result, Status.FAILED, "self.table is a plain tensor attribute")


def test_cpu_only_models_can_declare_it() -> None:
    def cpu_only() -> dict[str, Any]:
        return {**models.plain_tensor_attribute(), "devices": ["cpu"]}

    assert_status(verdict(cpu_only, DEVICE), Status.SKIPPED, "devices=['cpu']")


def test_autocast_overflow_in_bf16_names_leaf_and_line() -> None:
    result = verdict(models.bf16_nan_amp, AUTOCAST)
    assert_status(result, Status.FAILED, "out[1, 0, 0] is non-finite under bfloat16 autocast",
                  "finite in float32", "torch.finfo(x.dtype).min", "enabled=False")
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of("# BUG: bf16-cast"))


def test_autocast_fill_value_out_of_bf16_range_fails_at_its_line() -> None:
    result = verdict(models.bf16_overflow_amp, AUTOCAST)
    assert_status(result, Status.FAILED, "bfloat16 autocast (cpu) raised",
                  "outside the bfloat16 range", "torch.finfo(x.dtype).min")
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of("# BUG: bf16"))


def test_autocast_warns_with_the_same_verdict_where_amp_is_not_declared() -> None:
    """Issue 26: a model that never trains in mixed precision is not failed for it."""
    blocking = verdict(models.bf16_nan_amp, AUTOCAST)
    result = verdict(models.bf16_nan, AUTOCAST)
    assert_status(result, Status.WARNED,
                  "if the model trains in mixed precision, to make this check blocking")
    assert result.message.startswith(blocking.message)
    assert (result.file, result.line) == (blocking.file, blocking.line)


def test_autocast_leaves_the_pristine_model_alone() -> None:
    """A cache built lazily in forward must not keep bfloat16 in the model other checks
    use."""

    class LazyCache(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.cache: torch.Tensor | None = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            if self.cache is None or self.cache.dtype != h.dtype:  # rebuilt per dtype
                self.cache = h.detach().mean(0)
            return h + self.cache

    model = LazyCache()
    results = vet(lambda: {"model": model, "inputs": torch.randn(2, 4)}, [AUTOCAST])
    assert_status(results[AUTOCAST], Status.PASSED)
    assert model.cache is not None and model.cache.dtype == torch.float32


def test_autocast_skips_without_floating_parameters() -> None:
    assert_status(verdict(models.integer_model, AUTOCAST), Status.SKIPPED,
                  "no floating-point parameters")


def test_autocast_skips_when_float32_is_already_non_finite() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).log()

    result = verdict(lambda: {"model": Broken(), "inputs": torch.randn(2, 4)}, AUTOCAST)
    assert_status(result, Status.SKIPPED, "forward.finite")


def test_autocast_skips_float64_models() -> None:
    def double() -> dict[str, Any]:
        return {"model": nn.Linear(4, 2).double(), "inputs": torch.randn(2, 4).double()}

    assert_status(verdict(double, AUTOCAST), Status.SKIPPED, "float64")


# --------------------------------------------------------------------------- CUDA logic


def test_gpu_tolerance_scales_with_magnitude_and_declared_tolerance_widens() -> None:
    small = portability.gpu_tolerance(torch.ones(3))
    large = portability.gpu_tolerance(torch.full((3,), 1000.0))
    assert small == (1e-4, 1e-3)
    assert large[0] == pytest.approx(0.1) and large[1] == 1e-3
    assert portability.gpu_tolerance(torch.ones(3), {"atol": 0.5}) == (0.5, 1e-3)
    assert portability.gpu_tolerance(torch.ones(3), {"atol": 1e-9}) == (1e-4, 1e-3)
    assert portability.gpu_tolerance(torch.ones(3, dtype=torch.float16))[0] == 1e-2


def test_cpu_gpu_parity_comparison() -> None:
    gen = torch.Generator().manual_seed(0)
    reference = {"logits": torch.randn(4, 10, generator=gen), "ids": torch.arange(4)}
    noisy = {"logits": reference["logits"] * (1 + 1e-6), "ids": torch.arange(4)}
    assert portability.cpu_gpu_difference(reference, noisy) is None
    wrong = {"logits": reference["logits"] + 0.01, "ids": torch.arange(4)}
    diff = portability.cpu_gpu_difference(reference, wrong)
    assert diff is not None and diff.path == 'out["logits"]'
    assert portability.cpu_gpu_difference(reference, wrong, {"atol": 0.05}) is None
    # an argmax may flip on a near tie between devices: integer leaves are not compared
    flipped = {"logits": reference["logits"], "ids": torch.arange(4).flip(0)}
    assert portability.cpu_gpu_difference(reference, flipped) is None


def test_full_precision_fp32_disables_tf32_and_restores() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with portability.full_precision_fp32():
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.fixture
def cpu_as_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CUDA branch with the CPU standing in for the GPU: exercises its logic
    (eval, parity, train step) on machines without CUDA."""
    monkeypatch.setattr(portability, "cuda_wanted", lambda ctx: (True, ""))
    monkeypatch.setattr(portability, "_cuda_device", lambda ctx: torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)


@pytest.mark.usefixtures("cpu_as_gpu")
def test_cuda_branch_logic_on_a_cpu_stand_in() -> None:
    result = verdict(models.bn_cnn, DEVICE)
    assert_status(result, Status.PASSED, "CPU/GPU outputs agree (TF32 off)",
                  "forward+backward ran")


@pytest.mark.usefixtures("cpu_as_gpu")
def test_cuda_branch_does_not_compare_random_eval_outputs() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) + torch.randn_like(x)

    result = verdict(lambda: {"model": Noisy(), "inputs": torch.randn(2, 4)}, DEVICE)
    assert_status(result, Status.PASSED, "parity not compared")


@pytest.mark.usefixtures("cpu_as_gpu")
def test_cuda_branch_blames_the_device_only_when_the_cpu_step_works() -> None:
    calls: list[str] = []

    def device_only_failure(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append("step")
        if len(calls) == 1:  # the stand-in "GPU" step; the CPU retry then succeeds
            raise RuntimeError("Expected all tensors to be on the same device")
        return model(x).pow(2).mean()

    def always_failing(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch in the user's loss")

    result = verdict(lambda: {**models.bn_cnn(), "step": device_only_failure}, DEVICE)
    assert_status(result, Status.FAILED, "the training step on cpu raised",
                  "(it runs on the CPU)", "device=x.device")
    calls.clear()
    result = verdict(lambda: {**models.bn_cnn(), "step": always_failing}, DEVICE)
    assert_status(result, Status.PASSED, "fails on the CPU too")


def test_cuda_wanted_respects_declared_devices() -> None:
    @dataclasses.dataclass
    class Spec:
        devices: tuple[str, ...] | None

    @dataclasses.dataclass
    class Ctx:
        spec: Spec
        device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    wanted, why = portability.cuda_wanted(Ctx(Spec(("cpu", "mps"))))  # type: ignore[arg-type]
    assert not wanted and "excludes CUDA" in why
    wanted, why = portability.cuda_wanted(Ctx(Spec(None)))  # type: ignore[arg-type]
    assert wanted == torch.cuda.is_available()


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("factory", [models.bn_cnn, models.transformer, models.buffers,
                                     models.dict_output], ids=lambda f: f.__name__)
def test_cuda_forward_backward_and_parity(factory: Any) -> None:
    result = verdict(factory, DEVICE)
    assert_status(result, Status.PASSED, "CPU/GPU outputs agree", "forward+backward ran")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("factory", [models.bn_cnn, models.recurrent], ids=lambda f: f.__name__)
def test_cuda_as_the_model_device(factory: Any) -> None:
    """--device cuda: the pristine model lives on the GPU; meta, parity and the train
    step still run, and autocast tries float16 on CUDA."""
    results = check_inline(factory, checks=[DEVICE, AUTOCAST], device="cuda")
    assert_status(results[DEVICE], Status.PASSED, "CPU/GPU outputs agree",
                  "forward+backward ran")
    assert_status(results[AUTOCAST], Status.PASSED, "float16 (cuda)")


@pytest.mark.cuda
@needs_cuda
def test_cuda_with_device_cuda_catches_plain_tensor_attribute() -> None:
    results = check_inline(models.plain_tensor_attribute, checks=[DEVICE], device="cuda")
    assert_status(results[DEVICE], Status.FAILED, "self.mask is a plain tensor attribute")


@pytest.mark.cuda
@needs_cuda
def test_cuda_autocast_runs_fp16() -> None:
    result = verdict(models.bn_cnn, AUTOCAST)
    assert_status(result, Status.PASSED, "float16 (cuda)")
