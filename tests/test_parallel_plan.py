"""Sharding plans on two gloo CPU processes: context parallelism (diffusers' Ulysses attention) gives the output and
the gradients of one process, for every kind of backbone input, gated and not; HSDP and FSDP2's mixed-precision
policy take effect; a context-parallel training run has the per-step losses of a one-process run; bad plans fail
with a message naming the keys."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed_helpers import spawn_two

from itryon.models import BackboneInputs, WanDiT
from itryon.models.action_rope import ActionRoPE
from itryon.training.parallel import ParallelPlan, check_same_across

REPO = Path(__file__).resolve().parent.parent


def _on_two_processes(worker, out: Path) -> dict:
    """Rank 0's results of ``worker(rank, port, out)`` run on two processes."""
    spawn_two(worker, str(out))
    return torch.load(out, weights_only=True)


def _init(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)


def _finish(rank: int, result: dict, out: str) -> None:
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def _backbone(gates: bool) -> WanDiT:
    torch.manual_seed(0)
    model = WanDiT(
        in_channels=8,
        out_channels=4,
        dim=32,
        ffn_dim=64,
        num_layers=2,
        num_heads=4,
        text_dim=16,
        freq_dim=16,
        vace_layers=[0, 1],
        vace_in_channels=12,
        zero_init_gates=gates,
        cross_attention_rope=ActionRoPE(8, k=4),
    )
    with torch.no_grad():  # weights as after training: no zero-initialised part hides a wrong slice
        model.head.proj.weight.normal_(std=0.05)
        for name, p in model.named_parameters():
            if name.endswith("gate") or "_proj" in name:
                p.normal_(std=0.3)
    return model


def _inputs(stream_references: bool) -> tuple[torch.Tensor, torch.Tensor, BackboneInputs]:
    """Every kind at once: channels, VACE context, reference frames (or Wan-VACE's stream references), appended
    tokens, a per-frame context mask, A-RoPE positions and gated context tokens."""
    g = torch.Generator().manual_seed(1)
    b, f, h, w, length = 2, 2, 4, 4, 6
    positions = torch.randn(b, length, generator=g) * 3
    positions[:, :2] = float("nan")
    gated = torch.zeros(b, length, dtype=torch.bool)
    gated[:, 4:] = True
    kinds = dict(
        context=torch.randn(b, length, 16, generator=g),
        context_positions=positions,
        context_mask=torch.rand(b, f, length, generator=g) > 0.3,
        context_gated=gated,
        channels=torch.randn(b, 4, f, h, w, generator=g),
        vace_context=torch.randn(b, 12, f, h, w, generator=g),
        extra_tokens=torch.randn(b, 4, 32, generator=g),
        extra_token_positions=torch.tensor([[9, 0, 0], [9, 0, 1], [9, 1, 0], [9, 1, 1]]),
    )
    if stream_references:
        kinds["vace_reference"] = torch.randn(b, 4, 1, h, w, generator=g)
    else:
        kinds["reference_latents"] = torch.randn(b, 8, 1, h, w, generator=g)
    latents = torch.randn(b, 4, f + stream_references, h, w, generator=g)
    return latents, torch.tensor([250.0, 750.0]), BackboneInputs(**kinds)


def _context_parallel_worker(rank: int, port: int, out: str) -> None:
    from itryon.models.context_parallel import context_parallel_config

    _init(rank, port)
    parallel = context_parallel_config("cpu", 1, ulysses_degree=2)
    results = {}
    for gates in (False, True):
        for stream in (False, True):
            latents, t, inputs = _inputs(stream)
            whole = _backbone(gates)
            reference = whole(latents, t, inputs)
            reference.square().sum().backward()
            split = _backbone(gates)
            split.enable_context_parallel(parallel)
            output = split(latents, t, inputs)
            output.square().sum().backward()
            grad_error = 0.0
            for p, q in zip(split.parameters(), whole.parameters()):
                mean = p.grad.clone()
                dist.all_reduce(mean)  # FSDP2 over the two ranks averages
                mean /= 2
                grad_error = max(grad_error, float((mean - q.grad).abs().max() / q.grad.abs().max().clamp_min(1e-12)))
            results[(gates, stream)] = (
                float((output - reference).detach().abs().max()),
                grad_error,
                tuple(output.shape),
            )
    try:  # ranks that drew different noise: every rank of the group raises, not only the odd one
        check_same_across((torch.full((3,), float(rank)),), parallel, "noise")
        results["mismatch"] = "not raised"
    except RuntimeError as err:
        results["mismatch"] = str(err)
    check_same_across((torch.ones(3),), parallel, "noise")  # equal tensors pass
    _finish(rank, results, out)


@pytest.mark.distributed
def test_context_parallel_backbone_equals_one_process_for_every_input_kind(tmp_path: Path) -> None:
    results = _on_two_processes(_context_parallel_worker, tmp_path / "results.pt")
    assert "context-parallel ranks have different noise" in results.pop("mismatch")
    assert set(results) == {(False, False), (False, True), (True, False), (True, True)}
    for (gates, stream), (error, grad_error, shape) in results.items():
        assert shape == ((2, 4, 3, 4, 4) if stream else (2, 4, 2, 4, 4)), (gates, stream)
        assert error < 1e-5, (gates, stream, error)
        assert grad_error < 1e-4, (gates, stream, grad_error)


def _plan_worker(rank: int, port: int, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from itryon.config import CONFIG_ROOT, instantiate
    from itryon.training.run import prepare_config

    _init(rank, port)
    cfg = prepare_config(CONFIG_ROOT / "experiment" / "fsdp2_cpu.yaml", ["data.train.num_clips=4"])
    module = instantiate(cfg.model, "model")
    module.parallel = ParallelPlan(replicate=2, param_dtype="bfloat16", reshard_after_forward=False)
    module._device_mesh = init_device_mesh("cpu", (2, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    module.configure_model()
    weight = module.backbone.blocks[0].self_attn.q.weight
    seen = {}
    module.backbone.blocks[0].self_attn.q.register_forward_hook(
        lambda layer, args, output: seen.update(weight=layer.weight.dtype, output=output.dtype)
    )
    module.backbone.register_forward_pre_hook(lambda root, args: seen.update(timestep=args[1].dtype))
    module.backbone.blocks[0].register_forward_pre_hook(lambda block, args: seen.update(rope=args[2].rope_cos.dtype))
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset

    clips = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    batch = collate([clips[2 * rank + i] for i in range(2)])  # each replica its own clips
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the policy gathers bf16 weights; autocast picks op dtypes
        loss = module.diffusion_loss(batch)["loss"]
    loss.backward()
    grad = module.backbone.head.proj.weight.grad  # the zero-initialised head: the one non-zero gradient at init
    result = {
        "is_dtensor": isinstance(weight, DTensor),
        "mesh": weight.device_mesh.mesh_dim_names,
        "placements": [type(p).__name__ for p in weight.placements],
        "sharded_dtype": weight.dtype,
        "compute_dtype": seen["weight"],
        "inputs": (seen["timestep"], seen["rope"]),
        "grad_dtype": grad.dtype,
        "grad": grad.full_tensor(),
    }
    _finish(rank, result, out)


@pytest.mark.distributed
def test_hsdp_and_the_mixed_precision_policy_take_effect(tmp_path: Path) -> None:
    result = _on_two_processes(_plan_worker, tmp_path / "plan.pt")
    assert result["is_dtensor"]
    assert result["mesh"] == ("replicate", "shard")  # HSDP: replicated over 2 groups, sharded within each
    assert result["placements"] == ["Replicate", "Shard"]
    assert result["sharded_dtype"] == torch.float32  # fp32 master weights (and so fp32 optimizer state)
    assert result["compute_dtype"] == torch.bfloat16  # all-gathered and computed in bf16
    assert result["inputs"] == (torch.float32, torch.float32)  # timesteps and rotary tables are not cast to bf16
    assert result["grad_dtype"] == torch.float32
    assert torch.isfinite(result["grad"]).all() and result["grad"].abs().sum() > 0


def test_plan_errors_name_the_keys() -> None:
    with pytest.raises(ValueError, match=r"model.parallel.replicate must be >= 1"):
        ParallelPlan(replicate=0)
    with pytest.raises(ValueError, match=r"ring_degree \(3\) must divide context_parallel \(4\)"):
        ParallelPlan(context_parallel=4, ring_degree=3)
    with pytest.raises(ValueError, match="need a ModelParallelStrategy run"):
        ParallelPlan(context_parallel=2).meshes(None)
    assert ParallelPlan().meshes(None) == (None, None)
    policy = ParallelPlan(param_dtype="bf16").fsdp_kwargs()["mp_policy"]
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="model.parallel.param_dtype must be one of"):
        ParallelPlan(param_dtype="int8").fsdp_kwargs()
    assert policy.cast_forward_inputs is False
    with pytest.raises(ValueError, match="needs autocast, trainer.precision=bf16-mixed \\(got '32-true'\\)"):
        ParallelPlan(param_dtype="bfloat16").check_precision("32-true")
    ParallelPlan(param_dtype="bfloat16").check_precision("bf16-mixed")
    with pytest.raises(ValueError, match="set model.parallel.attention_backend to flash"):
        ParallelPlan(context_parallel=4, ring_degree=2)


def test_data_loader_workers_are_seeded_by_the_rank_of_the_data_they_serve(monkeypatch) -> None:
    from types import SimpleNamespace

    from itryon.data.datamodule import TryOnDataModule

    monkeypatch.setenv("PL_SEED_WORKERS", "1")
    from itryon.data.synthetic import SyntheticTryOnDataset

    data = TryOnDataModule(train=SyntheticTryOnDataset(split="train", num_clips=2), num_workers=2)
    # rank 3 of a run whose sampler serves data-parallel rank 1 (groups of two context-parallel ranks)
    data.trainer = SimpleNamespace(
        global_rank=3, strategy=SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 1})
    )
    assert data._worker_init_fn().keywords == {"rank": 1}
    data.trainer = SimpleNamespace(global_rank=3, strategy=SimpleNamespace())  # no sampler: the global rank
    assert data._worker_init_fn().keywords == {"rank": 3}
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    assert data._worker_init_fn() is None  # unseeded workers: Lightning's own behaviour


def test_a_backbone_without_a_context_parallel_plan_refuses_it() -> None:
    from itryon.models.backbone import Backbone

    with pytest.raises(NotImplementedError, match="Backbone has no context-parallel plan"):
        Backbone().enable_context_parallel(None)


def _losses(run_root: Path) -> list[float]:
    (log,) = run_root.glob("*/*/logs/**/metrics.csv")
    with open(log) as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


@pytest.mark.distributed
def test_a_context_parallel_run_has_the_losses_of_one_process(tmp_path: Path) -> None:
    config = REPO / "configs" / "experiment" / "context_parallel_cpu.yaml"
    common = [
        "--config",
        str(config),
        "data.train.num_clips=8",
        "data.val.num_clips=2",
        "data.batch_size=2",
        "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1",
        "model.sampler.num_steps=1",
        "trainer.max_steps=4",
    ]
    one = ["trainer.devices=1", "trainer.strategy.tensor_parallel_size=1", "model.parallel.context_parallel=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, extra in (("pair", []), ("one", one)):
        proc = subprocess.run(
            [sys.executable, "train.py", *common, *extra, f"output_dir={tmp_path / name}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    pair, one_process = _losses(tmp_path / "pair"), _losses(tmp_path / "one")
    assert len(pair) == len(one_process) == 4
    assert pair == pytest.approx(one_process, rel=1e-4, abs=1e-6)
    # the gathered export of the pair holds the one-process weights (up to float rounding through 4 updates)
    from safetensors.torch import load_file

    (pair_weights,) = (tmp_path / "pair").glob("*/*/weights/model.safetensors")
    (one_weights,) = (tmp_path / "one").glob("*/*/weights/model.safetensors")
    split, whole = load_file(pair_weights), load_file(one_weights)
    assert split.keys() == whole.keys()
    assert max(float((split[k] - whole[k]).abs().max()) for k in whole) < 1e-3
