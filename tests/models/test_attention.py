import pytest
import torch

from audioscope_kedro.models.attention import (
    ATTENTION_VARIANTS,
    AttentionConfig,
    Block,
    LoudnessCue,
    MotionSyncFeatures,
    SyncFeatures,
    build_attention,
)

VARIANTS = sorted(ATTENTION_VARIANTS)


def make(variant, **kw):
    torch.manual_seed(0)
    return build_attention(AttentionConfig(variant=variant, dim=16, heads=2, **kw)).eval()


def make_identity(block: Block) -> None:
    """A pre-norm residual block whose attention and MLP outputs are zero returns its input."""
    with torch.no_grad():
        for linear in (block.attn.out, block.mlp[-1]):
            linear.weight.zero_()
            linear.bias.zero_()


def perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("num_frames, positions, sources", [(1, 4, 2), (5, 9, 4), (17, 16, 8)])
def test_shapes(variant, num_frames, positions, sources):
    att = make(variant)
    out = att(torch.randn(2, sources, num_frames, 16), torch.randn(2, num_frames, positions, 16))
    assert out.shape == (2, sources, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_elements_do_not_leak(variant):
    att = make(variant)
    audio, video = torch.randn(3, 4, 6, 16), torch.randn(3, 6, 9, 16)
    alone = att(audio[:1], video[:1])
    audio2, video2 = audio.clone(), video.clone()
    audio2[1:] += 5 * torch.randn_like(audio2[1:])
    video2[1:] += 5 * torch.randn_like(video2[1:])
    torch.testing.assert_close(att(audio2, video2)[:1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant, layers):
    att = make(variant, layers=layers).train()
    audio = torch.randn(2, 3, 6, 16, requires_grad=True)
    video = torch.randn(2, 6, 4, 16, requires_grad=True)
    att(audio, video).pow(2).sum().backward()
    missing = [n for n, p in att.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert video.grad.abs().sum() > 0 and audio.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_depends_on_video(variant):
    att = make(variant)
    audio = torch.randn(1, 2, 6, 16)
    a = att(audio, torch.randn(1, 6, 4, 16))
    b = att(audio, torch.randn(1, 6, 4, 16))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("variant", ["sep_sa", "sep_cma"])
def test_separable_time_attention_is_global_and_within_streams(variant):
    """The time stage links any two frames of a stream, however far apart (64 frames, 8 s at
    8 fps), and never mixes streams: a change at the last frame of one source reaches that
    source's first frame and nothing else."""
    att = make(variant)
    audio, video = torch.randn(1, 3, 64, 16), torch.randn(1, 4, 64, 16)  # video as [B, P, F, D]
    a0, v0 = att.over_time(audio, video)
    audio2 = audio.clone()
    audio2[:, 1, -1] += 3 * torch.randn(16)
    a1, v1 = att.over_time(audio2, video)
    assert not torch.allclose(a1[:, 1, 0], a0[:, 1, 0])
    torch.testing.assert_close(a1[:, [0, 2]], a0[:, [0, 2]])
    torch.testing.assert_close(v1, v0)
    video2 = video.clone()
    video2[:, 2, 0] += 3 * torch.randn(16)
    a2, v2 = att.over_time(audio, video2)
    assert not torch.allclose(v2[:, 2, -1], v0[:, 2, -1])
    torch.testing.assert_close(v2[:, [0, 1, 3]], v0[:, [0, 1, 3]])
    torch.testing.assert_close(a2, a0)


@pytest.mark.parametrize("variant", ["sep_sa", "sep_cma"])
def test_separable_per_step_attention_does_not_mix_time_steps(variant):
    """The per-step layers see only the tokens of one frame: a change of the video at frame 5
    changes the sources' features at frame 5 and at no other frame."""
    att = make(variant, layers=3)
    audio, video = torch.randn(1, 3, 12, 16), torch.randn(1, 4, 12, 16)
    before = att.per_step(audio, video)
    video2 = video.clone()
    video2[:, :, 5] += 3 * torch.randn(4, 16)
    after = att.per_step(audio, video2)
    assert not torch.allclose(after[:, :, 5], before[:, :, 5])
    others = [t for t in range(12) if t != 5]
    torch.testing.assert_close(after[:, :, others], before[:, :, others])


@pytest.mark.parametrize("variant", ["cma", "sep_cma"])
def test_cross_modal_streams_update_in_parallel(variant):
    """Audio and video of one layer both read the previous layer's outputs. With the second
    layer's audio block the identity, the output is the first layer's audio update, which must
    read the input video, not the first layer's video update: changing that video block's
    weights leaves the output unchanged (a sequential ``v = v2a(v, a); a = a2v(a, v)`` would
    change it)."""
    att = make(variant, layers=2)
    cross = att.cross if variant == "cma" else att.step_cross
    make_identity(cross.a2v[1])
    audio, video = torch.randn(1, 3, 6, 16), torch.randn(1, 6, 4, 16)
    before = att(audio, video)
    perturb(cross.v2a[0])
    torch.testing.assert_close(att(audio, video), before)
    perturb(cross.a2v[0])  # the check itself can fail: the first audio block does matter
    assert not torch.allclose(att(audio, video), before)


@pytest.mark.parametrize("variant", ["cma", "sep_cma"])
def test_cross_modal_video_update_reaches_the_next_layer(variant):
    att = make(variant, layers=2)
    cross = att.cross if variant == "cma" else att.step_cross
    audio, video = torch.randn(1, 3, 6, 16), torch.randn(1, 6, 4, 16)
    before = att(audio, video)
    perturb(cross.v2a[0])
    assert not torch.allclose(att(audio, video), before)
    assert len(cross.v2a) == 1  # the last layer's video update would be read by nothing


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_round_trip(variant):
    config = AttentionConfig(variant=variant, dim=32, heads=2, layers=3, dropout=0.1)
    assert AttentionConfig.from_dict(vars(config)) == config


@pytest.mark.parametrize("variant", ["pool", "sa"])
def test_saved_config_with_time_window_loads_where_the_architecture_is_unchanged(variant):
    saved = {"variant": variant, "dim": 16, "heads": 2, "layers": 1, "time_window": 8}
    assert AttentionConfig.from_dict(saved) == AttentionConfig(variant, 16, 2, 1)


@pytest.mark.parametrize("variant", ["cma", "sep_sa", "sep_cma"])
def test_saved_config_with_time_window_is_refused_where_the_architecture_changed(variant):
    saved = {"variant": variant, "dim": 16, "heads": 2, "layers": 1, "time_window": 8}
    with pytest.raises(ValueError, match="time_window.*retrain"):
        AttentionConfig.from_dict(saved)


def test_unknown_saved_field_is_named():
    with pytest.raises(ValueError, match="window_size"):
        AttentionConfig.from_dict({"variant": "sa", "window_size": 3})


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError, match="layers"):
        AttentionConfig(layers=0)
    with pytest.raises(ValueError, match="divisible"):
        AttentionConfig(dim=30, heads=4)


def test_unknown_variant_and_mismatched_frames():
    with pytest.raises(ValueError, match="unknown attention variant"):
        build_attention(AttentionConfig(variant="lstm"))
    with pytest.raises(ValueError, match="frames"):
        make("sa")(torch.randn(1, 2, 5, 16), torch.randn(1, 6, 4, 16))


# ---------------------------------------------------------------- synchrony features


def make_sync(dim=16):
    torch.manual_seed(0)
    sync = SyncFeatures(dim).eval()
    perturb(sync)  # away from the initialisation, so that no invariance holds by accident
    return sync


def test_sync_shapes_and_batch_independence():
    sync = make_sync()
    audio, video = torch.randn(3, 4, 10, 16), torch.randn(3, 10, 9, 16)
    out = sync(audio, video)
    assert out.shape == (3, 4, 16)
    changed = video.clone()
    changed[1] += torch.randn_like(changed[1])
    again = sync(audio, changed)
    torch.testing.assert_close(again[[0, 2]], out[[0, 2]])
    assert not torch.allclose(again[1], out[1])
    # one frame (a clip shorter than a video frame's worth): no correlation, and no NaN
    single = sync(audio[:, :, :1], video[:, :1])
    assert torch.isfinite(single).all()
    torch.testing.assert_close(single[0], single[1])  # nothing of either input is left


def test_sync_ignores_level_and_offset_over_time():
    """A correlation: a louder source, a brighter picture, a constant added to either over the
    whole clip score the same (the features are centred and scaled over time)."""
    sync = make_sync()
    audio, video = torch.randn(2, 3, 12, 16), torch.randn(2, 12, 5, 16)
    out = sync(audio, video)
    offset_a, offset_v = torch.randn(2, 3, 1, 16), torch.randn(2, 1, 5, 16)
    moved = sync(4.0 * audio + offset_a, 0.5 * video + offset_v)
    torch.testing.assert_close(moved, out, atol=1e-4, rtol=1e-4)


def test_sync_depends_on_alignment_not_on_order_or_place():
    sync = make_sync()
    audio, video = torch.randn(2, 3, 12, 16), torch.randn(2, 12, 5, 16)
    out = sync(audio, video)
    time = torch.randperm(12)
    # the same reordering of both streams' time steps, or of the positions: the same features
    torch.testing.assert_close(sync(audio[:, :, time], video[:, time]), out)
    torch.testing.assert_close(sync(audio, video[:, :, torch.randperm(5)]), out)
    # audio shifted against the picture: other features
    assert not torch.allclose(sync(audio.roll(3, dims=2), video), out, atol=1e-3)


def test_sync_scores_a_source_that_follows_a_position_above_one_that_does_not():
    """With identity projections, channel correlations are the data's own: the source whose
    level follows position 2 over time gets correlation 1 there, the independent one less."""
    sync = SyncFeatures(4)
    with torch.no_grad():
        for linear in (sync.audio, sync.video):
            linear.weight.copy_(torch.eye(4))
            linear.bias.zero_()
    torch.manual_seed(1)
    video = torch.randn(1, 50, 3, 4)
    audio = torch.stack([video[:, :, 2], torch.randn(1, 50, 4)], dim=1)  # [1, 2, 50, 4]
    a = sync._standardise(sync.audio(audio))
    v = sync._standardise(sync.video(video.transpose(1, 2)))
    corr = torch.einsum("bmfd,bpfd->bmpd", a, v) / 50
    torch.testing.assert_close(corr[0, 0, 2], torch.ones(4), atol=1e-4, rtol=0)
    assert corr[0, 1].abs().max() < 0.5


# ---------------------------------------------------------- model-free motion synchrony


def moving_scene(frames=24, size=32, per_frame=80, seed=0):
    """A square in cell (2, 5) of an 8x8 grid that jumps on random frames, a source whose
    loudness follows those jumps and one with loudness of its own; still background."""
    g = torch.Generator().manual_seed(seed)
    jumps = torch.rand(frames, generator=g) > 0.5
    video = torch.zeros(1, frames, size, size, 3)
    offset = torch.cumsum(jumps.long(), 0) % 2  # the square moves by a pixel on each jump
    for t in range(frames):
        x = 20 + int(offset[t])
        video[0, t, 8:12, x : x + 3] = 1.0
    loud = torch.where(jumps, 1.0, 0.05).repeat_interleave(per_frame)
    own = (0.05 + torch.rand(frames, generator=g)).repeat_interleave(per_frame)
    noise = torch.randn(2, frames * per_frame, generator=g)
    sources = torch.stack([loud, own])[None] * noise[None]  # [1, 2, T]
    return sources, (video * 255).to(torch.uint8)


@pytest.mark.parametrize("cue", [LoudnessCue.LOG_LEVEL, LoudnessCue.LEVEL])
def test_motion_sync_finds_the_cell_that_moves_with_a_source(cue):
    sync = MotionSyncFeatures(8, cues=(cue,))
    sources, frames = moving_scene()
    corr = sync.correlations(sources, frames)[:, :, 0]  # [1, 2, 64]
    assert corr.shape == (1, 2, 64)
    best = corr[0, 0].argmax()
    assert best in (2 * 8 + 5, 1 * 8 + 5)  # the square's cell (or its row's edge)
    assert corr[0, 0].max() > 0.8
    assert corr[0, 1].max() < corr[0, 0].max() - 0.3
    still = corr[0, 0, 0]  # a cell where nothing moves correlates with nothing
    assert still == 0


def growing_scene(frames=32, size=32, per_frame=80, seed=0):
    """A bar in cell (2, 5) whose length follows a source's amplitude, as the realistic demo's
    objects grow with their sound: the picture changes where the amplitude changes. Each frame
    interval of the source is whole cycles of a tone, so its RMS is exactly the amplitude."""
    g = torch.Generator().manual_seed(seed)
    level = 0.1 + 0.9 * torch.rand(frames, generator=g)
    video = torch.zeros(1, frames, size, size, 3)
    for t in range(frames):
        video[0, t, 9, 20 : 20 + int(round(4 * float(level[t])))] = 1.0
    tone = torch.sin(2 * torch.pi * 4 * torch.arange(per_frame) / per_frame)  # 4 whole cycles
    sources = (level[:, None] * tone).reshape(1, 1, -1)
    return sources, (video * 255).to(torch.uint8)


def test_level_change_cue_follows_what_grows_with_the_amplitude():
    sources, frames = growing_scene()
    cues = tuple(LoudnessCue)
    corr = MotionSyncFeatures(8, cues=cues).correlations(sources, frames)[0, 0]  # [3, 64]
    best = dict(zip(cues, corr.amax(-1).tolist(), strict=True))
    assert corr[cues.index(LoudnessCue.LEVEL_CHANGE)].argmax() == 2 * 8 + 5
    assert best[LoudnessCue.LEVEL_CHANGE] > 0.8
    # the level itself says little about when the bar changes length
    assert best[LoudnessCue.LEVEL] < best[LoudnessCue.LEVEL_CHANGE] - 0.3
    assert best[LoudnessCue.LOG_LEVEL] < best[LoudnessCue.LEVEL_CHANGE] - 0.3


def test_each_cue_adds_its_summary_to_the_features():
    torch.manual_seed(0)
    sync = MotionSyncFeatures(8, cues=tuple(LoudnessCue))
    assert sync.out[0].in_features == 2 * len(LoudnessCue)
    sources, frames = growing_scene()
    corr = sync.correlations(sources, frames)  # [1, 1, 3, 64]
    # per source: the best cell of each cue, then the mean over cells of each cue
    summary = torch.cat([corr.amax(-1), corr.mean(-1)], dim=-1)  # [1, 1, 6]
    assert summary[0, 0, 2] > 0.8  # level_change's best cell, where the bar grows
    torch.testing.assert_close(sync(sources, frames), sync.out(summary))


def test_motion_cues_are_checked_by_name():
    assert AttentionConfig(motion_cues=["level", "level_change"]).motion_cues == (
        "level",
        "level_change",
    )
    with pytest.raises(ValueError, match="motion_cues.*'loudness'"):
        AttentionConfig(motion_cues=["loudness"])
    with pytest.raises(ValueError, match="motion_cues"):
        AttentionConfig(motion_cues=[])


def test_motion_sync_ignores_level_and_is_zero_for_silence_and_short_clips():
    torch.manual_seed(0)
    sync = MotionSyncFeatures(8, cues=tuple(LoudnessCue))
    perturb(sync)
    sources, frames = moving_scene()
    out = sync(sources, frames)
    assert out.shape == (1, 2, 8)
    torch.testing.assert_close(sync(sources * 7.0, frames), out, atol=1e-4, rtol=1e-4)
    silent = torch.zeros_like(sources)
    assert sync.correlations(silent, frames).abs().max() == 0
    two = sync.correlations(sources[..., : 2 * 80], frames[:, :2])
    assert two.shape == (1, 2, 3, 64) and two.abs().max() == 0


def test_motion_sync_depends_on_alignment():
    sync = MotionSyncFeatures(8)
    sources, frames = moving_scene()
    aligned = sync.correlations(sources, frames)[0, 0].max()
    shifted = sync.correlations(sources.roll(5 * 80, dims=-1), frames)[0, 0].max()
    assert shifted < aligned - 0.3
