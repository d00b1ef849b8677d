import itertools

import pytest
import torch

from audioscope_kedro.losses import (
    TAU,
    ClassificationLoss,
    active_combinations_loss,
    active_sources,
    classification_terms,
    exact_assignment_loss,
    mixit,
    snr_loss,
    supervised_clip_loss,
)

torch.manual_seed(0)


def brute_force_mixit(est, mix1, mix2):
    """The definition: a Python loop over every assignment."""
    b, m, _ = est.shape
    best_loss = torch.full((b,), float("inf"), dtype=est.dtype)
    best = torch.zeros(b, m)
    for bits in itertools.product([0, 1], repeat=m):
        a = torch.tensor(bits, dtype=est.dtype)
        est1 = (a[None, :, None] * est).sum(1)
        est2 = ((1 - a)[None, :, None] * est).sum(1)
        loss = snr_loss(est1, mix1) + snr_loss(est2, mix2)
        better = loss < best_loss
        best_loss = torch.where(better, loss, best_loss)
        best[better] = a.float()
    return best_loss, best


@pytest.mark.parametrize("m", [2, 4, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_mixit_equals_brute_force(m, seed):
    g = torch.Generator().manual_seed(seed)
    est = torch.randn(5, m, 400, generator=g, dtype=torch.float64)
    mix1, mix2 = (
        torch.randn(5, 400, generator=g, dtype=torch.float64),
        torch.randn(5, 400, generator=g, dtype=torch.float64),
    )
    loss, assignment = mixit(est, mix1, mix2)
    ref_loss, ref_assignment = brute_force_mixit(est, mix1, mix2)
    torch.testing.assert_close(loss, ref_loss)
    assert loss.shape == (5,) and assignment.shape == (5, m)
    # the chosen assignment reproduces the loss (ties aside, the same assignment)
    assert torch.equal(assignment.double(), ref_assignment.double())


def test_mixit_never_worse_than_a_fixed_assignment_and_finds_the_truth():
    s = torch.randn(3, 4, 300, dtype=torch.float64)
    mix1, mix2 = s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]
    est = s[:, [3, 0, 1, 2]]  # permuted perfect sources
    loss, assignment = mixit(est, mix1, mix2)
    assert torch.equal(assignment, torch.tensor([[0.0, 1, 0, 1]] * 3, dtype=torch.float64))
    # perfect: each term is 10 log10(tau ||y||^2)
    expected = 10 * torch.log10(TAU * (mix1**2).sum(-1)) + 10 * torch.log10(TAU * (mix2**2).sum(-1))
    torch.testing.assert_close(loss, expected)
    noisy = torch.randn(3, 4, 300, dtype=torch.float64)
    loss, _ = mixit(noisy, mix1, mix2)
    for bits in itertools.product([0, 1], repeat=4):
        a = torch.tensor(bits, dtype=torch.float64)[None, :, None]
        fixed = snr_loss((a * noisy).sum(1), mix1) + snr_loss(((1 - a) * noisy).sum(1), mix2)
        assert (loss <= fixed + 1e-9).all()


def test_mixit_gradient_flows_and_shape_errors():
    est = torch.randn(2, 4, 100, requires_grad=True)
    loss, _ = mixit(est, torch.randn(2, 100), torch.randn(2, 100))
    loss.sum().backward()
    assert est.grad is not None and torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected est_sources"):
        mixit(torch.randn(2, 100), torch.randn(2, 100), torch.randn(2, 100))


def test_snr_loss_capped_at_30_db():
    ref = torch.randn(4, 1000, dtype=torch.float64)
    perfect = snr_loss(ref, ref) - 10 * torch.log10((ref**2).sum(-1))
    torch.testing.assert_close(perfect, torch.full((4,), -30.0, dtype=torch.float64))


def test_exact_assignment_loss_is_bce_and_masks():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    target = torch.tensor([[1.0, 0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    torch.testing.assert_close(exact_assignment_loss(logits, target), expected.reshape(1))
    masked = exact_assignment_loss(logits, target, torch.tensor([[True, False, False]]))
    torch.testing.assert_close(masked, torch.nn.functional.softplus(-logits[:, 0]))


def brute_force_active_combinations(logits, assignment):
    m = logits.shape[-1]
    allowed = [i for i in range(m) if assignment[i] > 0]
    candidates = [
        c for r in range(1, len(allowed) + 1) for c in itertools.combinations(allowed, r)
    ] or [()]
    best = float("inf")
    for c in candidates:
        target = torch.zeros(m)
        target[list(c)] = 1
        best = min(
            best,
            torch.nn.functional.binary_cross_entropy_with_logits(
                logits, target, reduction="sum"
            ).item(),
        )
    return best / m


@pytest.mark.parametrize("seed", range(4))
def test_active_combinations_against_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 4, generator=g) * 3
    assignment = (torch.rand(6, 4, generator=g) > 0.5).float()
    got = active_combinations_loss(logits, assignment)
    for b in range(6):
        assert got[b].item() == pytest.approx(
            brute_force_active_combinations(logits[b], assignment[b]), rel=1e-5
        )
    # never above the exact-assignment loss: the exact target is one of the candidates
    nonempty = assignment.sum(-1) > 0
    assert (got[nonempty] <= exact_assignment_loss(logits, assignment)[nonempty] + 1e-6).all()


def test_supervised_clip_loss():
    logits = torch.tensor([[3.0, -3.0], [3.0, -3.0], [3.0, -3.0]])
    assignment = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    loss = supervised_clip_loss(logits, assignment, torch.tensor([1, 0, -1]))
    assert loss[0] < 0.1  # on-screen clip, confident and right
    assert loss[1] > 1.0  # off-screen clip: source 0 should be off
    assert loss[2] == 0.0  # unknown label: no term


@pytest.mark.parametrize("kind", list(ClassificationLoss))
@pytest.mark.parametrize("masked", [False, True])
def test_labelled_examples_get_the_supervised_term_only(kind, masked):
    """The noisy pseudo-label loss is not applied to human-labelled examples: their
    pseudo-label term is 0 and passes no gradient; unlabelled examples get no supervised
    term; each example's gradient is that of its own term."""
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(6, 4, generator=g) * 2).requires_grad_()
    assignment = (torch.rand(6, 4, generator=g) > 0.5).float()
    label = torch.tensor([1, 0, -1, -1, 1, -1])
    active = (torch.rand(6, 4, generator=g) > 0.2) if masked else None
    weight = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 0.3])
    pseudo, supervised = classification_terms(logits, assignment, label, kind, active, weight)
    labelled = label >= 0
    assert (pseudo[labelled] == 0).all() and (supervised[~labelled] == 0).all()
    expected = kind(logits, assignment, active) * weight
    torch.testing.assert_close(pseudo[~labelled], expected[~labelled])
    torch.testing.assert_close(
        supervised[labelled], supervised_clip_loss(logits, assignment, label, active)[labelled]
    )
    (grad_pseudo,) = torch.autograd.grad(pseudo.sum(), logits, retain_graph=True)
    (grad_sup,) = torch.autograd.grad(supervised.sum(), logits)
    assert (grad_pseudo[labelled] == 0).all() and (grad_sup[~labelled] == 0).all()
    assert grad_pseudo[~labelled].abs().sum() > 0 and grad_sup[labelled].abs().sum() > 0
    # without a weight, the pseudo-label term is the loss itself
    unweighted, _ = classification_terms(logits, assignment, label, kind, active)
    torch.testing.assert_close(unweighted[~labelled], kind(logits, assignment, active)[~labelled])


def test_active_sources():
    est = torch.stack([torch.ones(2, 100), torch.full((2, 100), 1e-4), torch.zeros(2, 100)], 1)
    assert active_sources(est).tolist() == [[True, False, False]] * 2
