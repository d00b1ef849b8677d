import pytest
import torch

from audioscope_kedro.models.attention import ATTENTION_VARIANTS, AttentionConfig, build_attention

VARIANTS = sorted(ATTENTION_VARIANTS)


def make(variant, **kw):
    torch.manual_seed(0)
    return build_attention(
        AttentionConfig(variant=variant, dim=16, heads=2, layers=2, time_window=4, **kw)
    ).eval()


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


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    att = make(variant).train()
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


def test_separable_time_attention_is_local():
    """sep_sa sees frames only within its window per layer: a change at the last frame cannot
    reach the first frame's features through one layer."""
    from audioscope_kedro.models.attention import Block, _time_attention

    torch.manual_seed(0)
    block = Block(16, 2, cross=True).eval()
    x = torch.randn(1, 2, 32, 16)
    y = x.clone()
    y[:, :, -1] += 10
    a, b = _time_attention(block, x, 4), _time_attention(block, y, 4)
    torch.testing.assert_close(a[:, :, :20], b[:, :, :20])
    assert not torch.allclose(a[:, :, -1], b[:, :, -1])


def test_unknown_variant_and_mismatched_frames():
    with pytest.raises(ValueError, match="unknown attention variant"):
        build_attention(AttentionConfig(variant="lstm"))
    with pytest.raises(ValueError, match="frames"):
        make("sa")(torch.randn(1, 2, 5, 16), torch.randn(1, 6, 4, 16))
