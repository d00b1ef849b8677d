import pytest
import torch

from audioscope_kedro.models.separation import Separator, SeparatorConfig, mixture_consistency

SMALL = dict(bottleneck=16, hidden=32, blocks=3, basis_size=64, window=64, hop=16)


@pytest.mark.parametrize("basis", ["learned", "stft"])
@pytest.mark.parametrize("num_sources", [2, 4, 8])
@pytest.mark.parametrize("length", [800, 1001, 4000])
def test_shapes_and_mixture_consistency(basis, num_sources, length):
    torch.manual_seed(0)
    sep = Separator(SeparatorConfig(num_sources=num_sources, basis=basis, **SMALL))
    mix = torch.randn(3, length)
    out = sep(mix)
    assert out.shape == (3, num_sources, length)
    torch.testing.assert_close(out.sum(1), mix, atol=1e-5, rtol=0)


def test_projection_is_minimal_and_idempotent():
    s, mix = torch.randn(2, 4, 50), torch.randn(2, 50)
    p = mixture_consistency(s, mix)
    torch.testing.assert_close(mixture_consistency(p, mix), p)
    # the correction is the same for every source (unweighted projection)
    delta = p - s
    torch.testing.assert_close(delta, delta[:, :1].expand_as(delta))


def test_batch_elements_do_not_leak():
    torch.manual_seed(0)
    sep = Separator(SeparatorConfig(num_sources=4, **SMALL)).eval()
    mix = torch.randn(2, 1600)
    alone = sep(mix[:1])
    changed = mix.clone()
    changed[1] = torch.randn(1600) * 10
    torch.testing.assert_close(sep(changed)[:1], alone, atol=1e-5, rtol=1e-4)


def test_gradients_reach_every_parameter():
    sep = Separator(SeparatorConfig(num_sources=4, repeats=2, **SMALL))
    sep(torch.randn(2, 1600)).pow(2).mean().backward()
    missing = [n for n, p in sep.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the mask of source 0..M-1 all matter; so does every block and residual scale
    assert missing == []


def test_bad_basis():
    with pytest.raises(ValueError, match="basis"):
        Separator(SeparatorConfig(basis="wavelet"))
