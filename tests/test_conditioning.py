"""The conditioning stack and the method's adapters: routing, CFG dropout, freezing, errors, values, zero-init no-ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from itryon.conditioning import (
    ActionCaptionAdapter,
    ConditioningStack,
    GarmentAdapter,
    GlobalCaptionAdapter,
    HandPriorAdapter,
    PersonAdapter,
    PoseAdapter,
    action_slots,
)
from itryon.conditioning.base import ConditionEnv, fold_mask
from itryon.models import ByteTextEncoder, PixelVAE, WanDiT
from itryon.models.loading import load_native_state

B, T, H, W = 2, 9, 8, 8  # PixelVAE(2, 4): latents (B, 48, 3, 4, 4); tokens (3, 2, 2)
C, S, TC, DIM, TEXT = 48, 2, 4, 32, 32
LATENT = (B, C, 3, 4, 4)


ACTIONS = [[{"start": 2, "end": 6, "text": "lifts the hem"}], []]


@pytest.fixture
def batch(make_batch) -> dict:
    """No hand in frames 0..4 (latent frames 0 and 1), none at all in sample 1; one action caption in sample 0."""
    return make_batch((B, T, H, W), handless=(1,), actions=ACTIONS)


def encoder(seed: int = 0) -> ByteTextEncoder:
    torch.manual_seed(seed)
    return ByteTextEncoder(TEXT, max_length=32)


def caption() -> GlobalCaptionAdapter:
    return GlobalCaptionAdapter(encoder(), drop_prob=0.0)


VAE = PixelVAE(spatial_compression=S, temporal_compression=TC)


def pretrained_like(model: WanDiT, seed: int = 0) -> WanDiT:
    """Stand-in for loaded weights: Wan zero-inits the head; a trained head is not zero (VACE projections stay zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.proj.weight.copy_(torch.randn(model.head.proj.weight.shape, generator=g) * 0.05)
    return model.eval()


def backbone(**kwargs) -> WanDiT:
    torch.manual_seed(0)
    args = dict(
        in_channels=C, out_channels=C, dim=DIM, ffn_dim=64, num_layers=2, num_heads=2, text_dim=TEXT, freq_dim=32
    )
    args.update(kwargs)
    return pretrained_like(WanDiT(**args))


def run(stack: ConditioningStack, model: WanDiT, batch: dict, latents: torch.Tensor, drop=None) -> torch.Tensor:
    cond = stack(batch, vae=VAE, latent_shape=latents.shape, drop=drop)
    return model(latents, torch.tensor([250.0, 750.0]), cond.inputs)


# ----------------------------------------------------------------------------------------------------
# zero-initialised injection: adding the adapter leaves a pretrained backbone's output unchanged at init


@pytest.mark.parametrize(
    "name,adapter,model_kwargs",
    [
        ("hands", lambda: HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2), {}),
        ("pose", lambda: PoseAdapter("residual", C, DIM, (1, 2, 2), S, TC, hidden_dim=16), {}),
        ("person", lambda: PersonAdapter("vace", C, S), dict(vace_layers=[0, 1], vace_in_channels=2 * C + S * S)),
        (
            "person",
            lambda: PersonAdapter("vace", C, S, pose_in_mask=True),
            dict(vace_layers=[0], vace_in_channels=2 * C + S * S),
        ),
        ("pose", lambda: PoseAdapter("vace", C), dict(vace_layers=[1], vace_in_channels=C)),
    ],
)
def test_adding_an_adapter_leaves_the_pretrained_output_unchanged(name, adapter, model_kwargs, batch):
    latents = torch.randn(LATENT)
    model = backbone(**model_kwargs)
    without = run(ConditioningStack({"caption": caption()}), model, batch, latents)
    stack = ConditioningStack({"caption": caption(), name: adapter()})
    cond = stack(batch, vae=VAE, latent_shape=latents.shape)
    assert any(v is not None for v in (cond.inputs.token_residual, cond.inputs.vace_context))
    assert torch.equal(run(stack, model, batch, latents), without)
    # the no-op comes from the zero-initialised paths only: once they move, the condition acts
    with torch.no_grad():
        for param in [*stack.parameters(), *model.parameters()]:
            if param.ndim == 2 and not param.any():
                param.normal_(std=0.05)
    assert not torch.allclose(run(stack, model, batch, latents), without, atol=1e-4)


def test_person_channels_on_a_widened_pretrained_patch_embedding_is_a_no_op(batch):
    latents = torch.randn(LATENT)
    person = PersonAdapter("channels", C, S)
    narrow = backbone()
    wide = WanDiT(
        in_channels=C + person.out_channels,
        out_channels=C,
        dim=DIM,
        ffn_dim=64,
        num_layers=2,
        num_heads=2,
        text_dim=TEXT,
        freq_dim=32,
    ).eval()
    load_native_state(wide, dict(narrow.state_dict()), extra_in_channels=person.out_channels)
    stack = ConditioningStack({"caption": caption(), "person": person})
    assert stack.extra_in_channels == C + S * S
    assert torch.equal(
        run(stack, wide, batch, latents), run(ConditioningStack({"caption": caption()}), narrow, batch, latents)
    )


def test_action_captions_without_actions_leave_an_arope_backbone_unchanged(batch):
    from itryon.models.action_rope import ActionRoPE

    batch["actions"] = [[], []]
    latents = torch.randn(LATENT)
    plain = backbone()
    with_rope = backbone(cross_attention_rope=ActionRoPE(DIM // 2, k=4))
    stack = ConditioningStack({"caption": caption(), "actions": ActionCaptionAdapter(k=4)})
    cond = stack(batch, vae=VAE, latent_shape=latents.shape)
    assert cond.inputs.context_positions is None
    assert torch.equal(run(stack, with_rope, batch, latents), run(stack, plain, batch, latents))


# ----------------------------------------------------------------------------------------------------
# adapter values


def test_fold_mask_matches_the_wan_vace_layout():
    mask = (torch.rand(1, 1, T, H, W) > 0.5).float()
    # Wan2.1-VACE: view(depth, h, s, w, s) -> permute(s, s, depth, h, w) -> reshape -> nearest-exact in time
    ref = mask[0, 0].view(T, H // S, S, W // S, S).permute(2, 4, 0, 1, 3).reshape(S * S, T, H // S, W // S)
    ref = F.interpolate(ref.unsqueeze(0), size=(3, H // S, W // S), mode="nearest-exact")
    assert torch.equal(fold_mask(mask, 3, S), ref)


def test_person_vace_context_is_inactive_reactive_and_folded_mask(batch):
    out = PersonAdapter("vace", C, S)(batch, ConditionEnv(VAE, LATENT), torch.tensor([True, False]))
    a, m = batch["agnostic"], batch["agnostic_mask"]
    assert out.kind == "vace" and out.value.shape == (B, 2 * C + S * S, 3, 4, 4)
    torch.testing.assert_close(out.value[0, :C], VAE.encode(a * (1 - m))[0])
    torch.testing.assert_close(out.value[0, C : 2 * C], VAE.encode(a * m)[0])
    assert torch.equal(out.value[0, 2 * C :], fold_mask(m, 3, S)[0])
    # dropped sample: grey video, generate everywhere (VACE's text-to-video input)
    assert torch.equal(out.value[1, : 2 * C], torch.zeros(2 * C, 3, 4, 4))
    assert torch.equal(out.value[1, 2 * C :], torch.ones(S * S, 3, 4, 4))


def test_person_pose_in_mask_draws_the_pose_in_the_generated_region(batch):
    out = PersonAdapter("vace", C, S, pose_in_mask=True)(
        batch, ConditionEnv(VAE, LATENT), torch.ones(B, dtype=torch.bool)
    )
    torch.testing.assert_close(out.value[:, C : 2 * C], VAE.encode(batch["pose"] * batch["agnostic_mask"]))


def test_person_control_fold_carries_the_pose_exactly_beside_a_small_latent(batch):
    from itryon.models import LinearVAE

    k = 8  # a latent space too small to hold the pose render
    g = torch.Generator().manual_seed(0)
    components = torch.linalg.qr(torch.randn(C, k, generator=g)).Q
    small = LinearVAE(torch.zeros(C), components, 1.0, S, TC)
    env = ConditionEnv(small, (B, k, 3, 4, 4))
    adapter = PersonAdapter("vace", k, S, pose_in_mask=True, control_encoding="fold", temporal_compression=TC)
    out = adapter(batch, env, torch.ones(B, dtype=torch.bool))
    a, m, pose = batch["agnostic"], batch["agnostic_mask"], batch["pose"]
    assert adapter.out_channels == k + 3 * TC * S * S + S * S and out.value.shape == (B, adapter.out_channels, 3, 4, 4)
    torch.testing.assert_close(out.value[:, :k], small.encode(a * (1 - m)))
    torch.testing.assert_close(out.estimate, small.encode(a * (1 - m)))
    reactive = out.value[:, k : k + 3 * TC * S * S]
    assert torch.equal(reactive, VAE.encode(pose * m))
    torch.testing.assert_close(VAE.decode(reactive), pose * m)  # the fold loses nothing (the VAE would)
    assert (small.decode(small.encode(pose * m)) - pose * m).abs().max() > 0.1
    assert torch.equal(out.value[:, -S * S :], fold_mask(m, 3, S))
    with pytest.raises(ValueError, match="built for temporal_compression=2; the VAE has 4"):
        PersonAdapter("vace", k, S, control_encoding="fold", temporal_compression=2)(
            batch, env, torch.ones(B, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="control_encoding='fold'.*needs mode='vace'"):
        PersonAdapter("channels", k, S, control_encoding="fold")
    with pytest.raises(ValueError, match="control_encoding must be 'vae' or 'fold', got 'pixels'"):
        PersonAdapter("vace", k, S, control_encoding="pixels")


def test_hand_prior_is_exactly_zero_where_no_hand_and_when_dropped(batch):
    adapter = HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2)
    torch.nn.init.normal_(adapter.guider.proj.weight)  # as after training
    env = ConditionEnv(VAE, LATENT)
    res = adapter(batch, env, torch.ones(B, dtype=torch.bool)).value.view(B, 3, 4, DIM)  # (B, F', H'W', dim)
    # frames 0..4 have no hand: latent frames 0 ({0}) and 1 ({1..4}); latent frame 2 ({5..8}) has hands
    assert torch.equal(res[0, :2], torch.zeros(2, 4, DIM))
    assert res[0, 2].abs().min() > 0
    assert torch.equal(res[1], torch.zeros(3, 4, DIM))
    dropped = adapter(batch, env, torch.tensor([False, True])).value
    assert torch.equal(dropped, torch.zeros_like(dropped))
    # gradients reach the guider
    res.sum().backward()
    assert adapter.guider.encoder.temporal.weight.grad.abs().sum() > 0


def test_pose_residual_grid_order_and_drop(batch):
    adapter = PoseAdapter("residual", C, DIM, (1, 2, 2), S, TC, hidden_dim=16)
    torch.nn.init.normal_(adapter.proj.weight)
    env = ConditionEnv(VAE, LATENT)
    out = adapter(batch, env, torch.tensor([True, False]))
    assert out.kind == "residual" and out.value.shape == (B, 12, DIM)
    assert torch.equal(out.value[1], torch.zeros(12, DIM)) and out.value[0].abs().sum() > 0
    # a change in the last pixel frame only moves the tokens of the last latent frame (causal time grouping)
    moved = dict(batch, pose=batch["pose"].clone())
    moved["pose"][:, :, -1] += 1.0
    diff = (
        adapter(moved, env, torch.ones(B, dtype=torch.bool)).value
        - adapter(batch, env, torch.ones(B, dtype=torch.bool)).value
    )
    per_frame = diff.view(B, 3, 4, DIM).abs().amax(dim=(2, 3))
    assert torch.equal(per_frame[:, :2], torch.zeros(B, 2)) and (per_frame[:, 2] > 0).all()


def test_garment_reference_and_tokens(batch):
    env = ConditionEnv(VAE, LATENT)
    keep = torch.tensor([True, False])
    ref = GarmentAdapter("reference", C)(batch, env, keep)
    resized = F.interpolate(batch["garment"], size=(H, W), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(ref.value[0], VAE.encode(resized.unsqueeze(2))[0])
    assert torch.equal(ref.value[1], torch.zeros(C, 1, 4, 4))  # null garment: grey image
    tokens = GarmentAdapter("tokens", C, DIM, (1, 2, 2))(batch, env, keep)
    assert tokens.value.shape == (B, 4, DIM)
    assert tokens.positions.tolist() == [[3, 0, 0], [3, 0, 1], [3, 1, 0], [3, 1, 1]]  # frame after the 3 video frames


def test_garment_modes_run_through_the_backbone_and_stay_out_of_the_output(batch):
    latents = torch.randn(LATENT)
    stack = ConditioningStack(
        {"caption": caption(), "person": PersonAdapter("vace", C, S), "garment": GarmentAdapter("reference", C)}
    )
    out = run(stack, backbone(vace_layers=[0], vace_in_channels=2 * C + S * S), batch, latents)
    assert out.shape == LATENT and torch.isfinite(out).all()
    stack = ConditioningStack({"caption": caption(), "garment": GarmentAdapter("tokens", C, DIM, (1, 2, 2))})
    cond = stack(batch, vae=VAE, latent_shape=LATENT)
    assert cond.inputs.extra_tokens.shape == (B, 4, DIM) and cond.inputs.reference_latents is None
    assert run(stack, backbone(), batch, latents).shape == LATENT


def test_action_slots_by_hand():
    acts = [{"start": 2, "end": 10, "text": "pull"}, {"start": 12, "end": 13, "text": "tug"}]
    # 13 frames, c = 4: latent frames {0}, {1..4}, {5..8}, {9..12}; "pull" covers 1..3, "tug" covers 3
    seg = action_slots(acts, 13, 4, k=4, positions="segment", empty_caption="")
    assert [(s.text, s.position, s.segments) for s in seg] == [
        ("", None, (0,)),
        ("pull", 4.0, (1,)),
        ("pull", 8.0, (2,)),
        ("pull", 12.0, (3,)),
        ("tug", 12.0, (3,)),
    ]
    center = action_slots(acts, 13, 4, k=4, positions="center")
    assert [(s.text, s.position, s.segments) for s in center] == [
        ("", None, (0,)),
        ("pull", 8.0, (1, 2, 3)),
        ("tug", 12.0, (3,)),
    ]
    assert [s.position for s in action_slots(acts, 13, 4, positions="none")] == [None, None, None]
    with pytest.raises(ValueError, match=r"actions\[0\] span \[2, 20\) is not inside the clip's 13 frames"):
        action_slots([{"start": 2, "end": 20, "text": "x"}], 13, 4)


def test_action_caption_context_positions_and_hard_mask(batch):
    adapter = ActionCaptionAdapter(encoder(), k=4, positions="segment", hard_mask=True)
    env = ConditionEnv(VAE, LATENT)
    out = adapter(batch, env, torch.ones(B, dtype=torch.bool))
    n_hem = len(b"lifts the hem") + 1  # bytes + end token
    # sample 0: empty caption (1 token, segment 0), "lifts the hem" at segments 1 (pos 4) and 2 (pos 8)
    assert out.value.shape == (B, 1 + 2 * n_hem, TEXT)
    expected = [float("nan")] + [4.0] * n_hem + [8.0] * n_hem
    torch.testing.assert_close(out.positions[0], torch.tensor(expected), equal_nan=True)
    assert torch.isnan(out.positions[1]).all()
    assert out.mask[0, 0].tolist() == [True] + [False] * 2 * n_hem
    assert out.mask[0, 1].tolist() == [False] + [True] * n_hem + [False] * n_hem
    assert out.mask[0, 2].tolist() == [False] * (1 + n_hem) + [True] * n_hem
    assert out.mask[1].tolist() == [[True] + [False] * 2 * n_hem] * 3  # padding is hidden
    # the same text gives the same keys; the dropped sample falls back to the empty caption
    torch.testing.assert_close(out.value[0, 1 : 1 + n_hem], out.value[0, 1 + n_hem :])
    dropped = adapter(batch, env, torch.tensor([False, True]))
    assert dropped.positions is None and dropped.value.shape[1] == 1


# ----------------------------------------------------------------------------------------------------
# the stack: routing, dropout, freezing, errors


def test_routing_concatenates_by_kind_and_pads_reference_channels(batch):
    person = PersonAdapter("channels", C, S)
    stack = ConditioningStack(
        {
            "caption": caption(),
            "actions": ActionCaptionAdapter(k=4),
            "person": person,
            "garment": GarmentAdapter("reference", C),
            "pose": PoseAdapter("residual", C, DIM, (1, 2, 2), S, TC, hidden_dim=16),
            "hands": HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2),
        }
    )
    assert stack.required_keys == {"caption", "actions", "agnostic", "agnostic_mask", "garment", "pose", "hand_prior"}
    cond = stack(batch, vae=VAE, latent_shape=LATENT)
    assert cond.inputs.channels.shape == (B, C + S * S, 3, 4, 4)
    assert cond.inputs.reference_latents.shape == (B, C + C + S * S, 1, 4, 4)
    assert torch.equal(cond.inputs.reference_latents[:, C:], torch.zeros(B, C + S * S, 1, 4, 4))
    global_len = 32
    assert torch.isnan(cond.inputs.context_positions[:, :global_len]).all()
    assert not torch.isnan(cond.inputs.context_positions[0, global_len:]).all()
    assert cond.inputs.token_residual.shape == (B, 12, DIM) and torch.equal(
        cond.inputs.token_residual, torch.zeros(B, 12, DIM)
    )
    assert cond.inputs.kinds == {
        "context",
        "context_positions",
        "context_mask",
        "channels",
        "residual",
        "reference",
        "gated_context",
    } - ({"context_mask"} if cond.inputs.context_mask is None else set())
    # the action captions are gated, the global caption is not
    assert not cond.inputs.context_gated[:, :global_len].any() and cond.inputs.context_gated[:, global_len:].all()


def test_guidance_dropout_off_keeps_every_condition_in_training_but_honours_forced_drops():
    stack = ConditioningStack(
        {
            "caption": GlobalCaptionAdapter(encoder(), drop_prob=0.3),
            "garment": GarmentAdapter("reference", C, drop_prob=0.5),
        },
        drop_all_prob=0.1,
        guidance_dropout=False,
    ).train()
    keeps = stack.keep_flags(5000, None, torch.device("cpu"))
    assert all(bool(k.all()) for k in keeps.values())
    keeps = stack.keep_flags(4, ["garment"], torch.device("cpu"))  # sampling-time CFG still drops on request
    assert keeps["caption"].all() and not keeps["garment"].any()


def test_cfg_dropout_rates_independence_drop_all_and_eval(batch):
    torch.manual_seed(0)
    stack = ConditioningStack(
        {
            "caption": GlobalCaptionAdapter(encoder(), drop_prob=0.3),
            "garment": GarmentAdapter("reference", C, drop_prob=0.5),
        },
        drop_all_prob=0.1,
    )
    keeps = stack.keep_flags(20000, None, torch.device("cpu"))
    both_dropped = (~keeps["caption"] & ~keeps["garment"]).float().mean().item()
    assert abs((~keeps["caption"]).float().mean().item() - (1 - 0.9 * 0.7)) < 0.015
    assert abs((~keeps["garment"]).float().mean().item() - (1 - 0.9 * 0.5)) < 0.015
    assert abs(both_dropped - (0.1 + 0.9 * 0.3 * 0.5)) < 0.015  # independent, plus drop-all
    stack.eval()
    keeps = stack.keep_flags(1000, None, torch.device("cpu"))
    assert all(bool(k.all()) for k in keeps.values())
    keeps = stack.keep_flags(4, ["garment"], torch.device("cpu"))
    assert keeps["caption"].all() and not keeps["garment"].any()
    cond = stack(batch, vae=VAE, latent_shape=LATENT, drop="all")
    empty, _ = stack.adapters["caption"].encoder(["", ""])
    assert torch.equal(cond.inputs.context, empty)
    assert torch.equal(cond.inputs.reference_latents, torch.zeros(B, C, 1, 4, 4))


def test_frozen_parts_stay_frozen_and_trainable_parts_train(batch):
    stack = ConditioningStack(
        {"caption": caption(), "hands": HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2)}
    )
    stack.train()
    assert not stack.adapters["caption"].training and not stack.adapters["caption"].encoder.training
    assert not any(p.requires_grad for p in stack.adapters["caption"].parameters())
    assert all(p.requires_grad for p in stack.adapters["hands"].parameters())
    cond = stack(batch, vae=VAE, latent_shape=LATENT)
    assert not cond.inputs.context.requires_grad and cond.inputs.token_residual.requires_grad


def test_errors_name_adapter_key_and_choices(batch):
    with pytest.raises(KeyError, match="adapter 'hands' \\(HandPriorAdapter\\) needs batch key 'hand_prior'"):
        stack = ConditioningStack(
            {"caption": caption(), "hands": HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2)}
        )
        stack({k: v for k, v in batch.items() if k != "hand_prior"}, vae=VAE, latent_shape=LATENT)
    with pytest.raises(ValueError, match="'person' and 'person2' both turn batch key 'agnostic' into 'vace'"):
        ConditioningStack(
            {"caption": caption(), "person": PersonAdapter("vace", C, S), "person2": PersonAdapter("vace", C, S)}
        )
    with pytest.raises(ValueError, match="'pose' and 'pose2' both turn batch key 'pose' into 'vace'"):
        ConditioningStack(
            {
                "caption": caption(),
                "pose": PersonAdapter("vace", C, S, pose_in_mask=True),
                "pose2": PoseAdapter("vace", C),
            }
        )
    with pytest.raises(ValueError, match="at least one 'context' adapter"):
        ConditioningStack({"person": PersonAdapter("vace", C, S)})
    with pytest.raises(ValueError, match="identifier other than 'all'"):
        ConditioningStack({"caption": caption(), "all": GarmentAdapter()})
    with pytest.raises(TypeError, match="adapter 'x' must be a ConditioningAdapter"):
        ConditioningStack({"caption": caption(), "x": torch.nn.Linear(1, 1)})
    stack = ConditioningStack({"caption": caption(), "hands": None})  # None = switched off
    assert list(stack.adapters) == ["caption"]
    with pytest.raises(KeyError, match=r"unknown adapter\(s\) \['hands'\]; valid: 'all' or any of \['caption'\]"):
        stack(batch, vae=VAE, latent_shape=LATENT, drop=["hands"])
    with pytest.raises(ValueError, match="shares the text encoder of adapter 'caption'.*no such adapter"):
        ConditioningStack({"cap": caption(), "actions": ActionCaptionAdapter()})
    with pytest.raises(ValueError, match="PersonAdapter mode must be 'vace' or 'channels', got 'tokens'"):
        PersonAdapter("tokens")
    with pytest.raises(ValueError, match="spatial reduction .* must be a power of two"):
        HandPriorAdapter(DIM, (1, 2, 2), 3, TC)
    with pytest.raises(ValueError, match="token grid"):
        stack = ConditioningStack(
            {"caption": caption(), "hands": HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2)}
        )
        stack(batch, vae=VAE, latent_shape=(B, C, 3, 2, 2))
