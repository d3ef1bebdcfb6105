"""Muon on the blocks' matrices with AdamW elsewhere: the same steps as the two optimisers apart, one schedule,
a state that round-trips, and training through Lightning."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from itryon.config import CONFIG_ROOT, instantiate
from itryon.training.optim import MuonAdamW, block_matrices, build_optimizer
from itryon.training.run import prepare_config


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(3, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8)) for _ in range(2)])
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.norm(x))


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(step))
    return model(x).square().mean()


def test_block_matrices_are_the_linear_weights_of_the_blocks() -> None:
    model = Tiny()
    found = block_matrices(model.blocks)
    assert [tuple(p.shape) for p in found] == [(8, 8)] * 4
    assert all(p is q for p, q in zip(found, [b[i].weight for b in model.blocks for i in (0, 2)]))


def test_one_optimiser_steps_exactly_as_muon_and_adamw_apart() -> None:
    combined, apart = Tiny(), Tiny()
    opt = build_optimizer("muon", list(combined.parameters()), combined.blocks, 1e-2, (0.9, 0.99), 0.0)
    assert isinstance(opt, MuonAdamW)
    matrices = block_matrices(apart.blocks)
    ids = {id(p) for p in matrices}
    muon = torch.optim.Muon(matrices, lr=1e-2, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    rest = [p for p in apart.parameters() if id(p) not in ids]
    adamw = torch.optim.AdamW(
        [{"params": [p for p in rest if p.ndim >= 2]}, {"params": [p for p in rest if p.ndim < 2]}],
        lr=1e-2,
        betas=(0.9, 0.99),
        weight_decay=0.0,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)  # one schedule drives both halves
    for step in range(3):
        opt.zero_grad()
        loss_of(combined, step).backward()
        opt.step()
        schedule.step()
        muon.zero_grad()
        adamw.zero_grad()
        loss_of(apart, step).backward()
        muon.step()
        adamw.step()
        for group in (*muon.param_groups, *adamw.param_groups):
            group["lr"] = 1e-2 * 0.5 ** (step + 1)
    for p, q in zip(combined.parameters(), apart.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    assert [g["lr"] for g in opt.muon.param_groups] == [1e-2 * 0.125]


def test_state_round_trips_and_a_foreign_state_is_refused() -> None:
    model = Tiny()
    opt = build_optimizer("muon", list(model.parameters()), model.blocks, 1e-2, (0.9, 0.999), 0.0)
    for step in range(2):
        opt.zero_grad()
        loss_of(model, step).backward()
        opt.step()
    assert len(opt.state) == sum(1 for _ in model.parameters())  # every parameter has a state after a step
    twin = copy.deepcopy(model)
    twin_opt = build_optimizer("muon", list(twin.parameters()), twin.blocks, 1e-2, (0.9, 0.999), 0.0)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a file: no tensor shared with opt
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        loss_of(m, 5).backward()
        o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    with pytest.raises(ValueError, match="a MuonAdamW state has 3 parameter groups"):
        twin_opt.load_state_dict(torch.optim.AdamW(model.parameters()).state_dict())
    with pytest.warns(UserWarning, match="lists no transformer block"):
        fallback = build_optimizer("muon", list(model.parameters()), [], 1e-2, (0.9, 0.999), 0.0)
    assert isinstance(fallback, torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer("lion", list(model.parameters()), model.blocks, 1e-2, (0.9, 0.999), 0.0)


def test_state_written_through_the_optimiser_stays_with_the_owner() -> None:
    """What Lightning does when it moves a state to a device: read and write ``optimizer.state[p]`` for every
    parameter; each entry must stay in the optimiser that trains the parameter, and ``state_dict`` must work."""
    model = Tiny()
    opt = build_optimizer("muon", list(model.parameters()), model.blocks, 1e-2, (0.9, 0.999), 0.0)
    first = next(model.parameters())
    opt.state[first] = {"seen": 1}  # written before any step: lands in its owner
    assert opt.state[first] == {"seen": 1} and len(opt.state) == 1
    del opt.state[first]
    opt.zero_grad()
    loss_of(model, 0).backward()
    opt.step()
    muon_ids = {id(p) for g in opt.muon.param_groups for p in g["params"]}
    for p, value in list(opt.state.items()):
        opt.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in value.items()}
    fresh = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(KeyError, match="no inner optimiser trains"):
        opt.state[fresh]
    assert {id(p) for p in opt.muon.state} == muon_ids
    assert not muon_ids & {id(p) for p in opt.adamw.state}
    assert len(opt.muon.state) + len(opt.adamw.state) == sum(1 for _ in model.parameters())
    saved = opt.state_dict()
    assert len(saved["state"]) == sum(1 for _ in model.parameters())
    assert [len(g["params"]) for g in saved["param_groups"]] == [len(g["params"]) for g in opt.param_groups]


def test_the_module_trains_its_backbone_blocks_with_muon() -> None:
    cfg = prepare_config(CONFIG_ROOT / "default.yaml", ["model.optimizer=muon"])
    module = instantiate(cfg.model, "model")
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, MuonAdamW)
    muon_params = {id(p) for g in optimizer.muon.param_groups for p in g["params"]}
    assert muon_params == {id(p) for p in block_matrices(module.backbone.transformer_blocks())}
    adamw_params = {id(p) for g in optimizer.adamw.param_groups for p in g["params"]}
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert muon_params | adamw_params == trainable and not muon_params & adamw_params


@pytest.mark.parametrize("adjust_lr_fn", ["match_rms_adamw", "original", "spectral_unclamped", None])
@pytest.mark.parametrize("nesterov", [True, False])
def test_stacked_muon_steps_bit_exactly_as_torch_muon(adjust_lr_fn, nesterov) -> None:
    from itryon.training.optim import StackedMuon

    torch.manual_seed(0)
    shapes = [(8, 8), (8, 8), (16, 8), (8, 16), (8, 8), (16, 8)]  # several of one shape: one batched product each
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    kwargs = dict(lr=3e-2, weight_decay=0.1, momentum=0.9, nesterov=nesterov, adjust_lr_fn=adjust_lr_fn)
    a, b = StackedMuon(ours, **kwargs), torch.optim.Muon(theirs, **kwargs)
    for step in range(4):
        for params, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            sum((p.sin() * (i + step + 1)).sum() for i, p in enumerate(params)).backward()
            opt.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
        assert not torch.equal(p, p.new_zeros(p.shape))
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(a.state[p]["momentum_buffer"], b.state[q]["momentum_buffer"], atol=0, rtol=0)
