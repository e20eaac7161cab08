import torch

from distill.losses import DistillationLoss, ctc_kd_loss, feature_mimic_loss, FeatureAdapter
from distill.models.backbones import ShuffleNetV2Backbone
from distill.models.crnn import CRNN


def test_kd_loss_is_zero_for_identical_distributions():
    logits = torch.randn(2, 7, 11)
    assert ctc_kd_loss(logits, logits.clone(), torch.tensor([7, 4])).item() < 1e-6


def test_kd_loss_ignores_time_steps_beyond_each_length():
    torch.manual_seed(0)
    s, t = torch.randn(2, 8, 5), torch.randn(2, 8, 5)
    lengths = torch.tensor([8, 3])
    base = ctc_kd_loss(s, t, lengths)
    s2, t2 = s.clone(), t.clone()
    s2[1, 3:] = torch.randn(5, 5) * 10
    t2[1, 3:] = torch.randn(5, 5) * 10
    assert torch.allclose(base, ctc_kd_loss(s2, t2, lengths))


def test_kd_loss_is_normalised_by_the_total_length():
    torch.manual_seed(1)
    s, t = torch.randn(1, 6, 5), torch.randn(1, 6, 5)
    one = ctc_kd_loss(s, t, torch.tensor([6]), temperature=1.0)
    twice = ctc_kd_loss(torch.cat([s, s]), torch.cat([t, t]), torch.tensor([6, 6]), temperature=1.0)
    assert torch.allclose(one, twice)
    manual = torch.nn.functional.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="sum") / 6
    assert torch.allclose(one, manual, atol=1e-6)


def test_feature_mimic_loss_adapts_channels_and_masks():
    adapter = FeatureAdapter(8, 16)
    s, t = torch.randn(2, 8, 1, 10), torch.randn(2, 16, 1, 10)
    loss = feature_mimic_loss(s, t, adapter, torch.tensor([10, 5]))
    loss.backward()
    assert loss.item() > 0 and adapter.proj.weight.grad is not None


def test_total_is_the_weighted_sum_of_named_terms():
    torch.manual_seed(2)
    fn = DistillationLoss(alpha=0.6, beta=0.5, student_channels=8, teacher_channels=16)
    logits = torch.randn(2, 10, 6)
    terms = fn(logits, torch.tensor([1, 2, 3, 4]), torch.tensor([10, 9]), torch.tensor([2, 2]),
               teacher_logits=torch.randn(2, 10, 6), student_features=torch.randn(2, 8, 1, 10),
               teacher_features=torch.randn(2, 16, 1, 10))
    assert set(terms) == {"ctc", "kd", "feat", "total"}
    expected = 0.6 * terms["kd"] + 0.4 * terms["ctc"] + 0.5 * terms["feat"]
    assert torch.allclose(terms["total"], expected)


def test_ctc_loss_decreases_on_a_tiny_fixed_batch():
    torch.manual_seed(0)
    model = CRNN(ShuffleNetV2Backbone(widths=(16, 32, 64), depths=(1, 1, 1), stem=8, out_channels=32), 12,
                 rnn_hidden=16)
    fn = DistillationLoss(alpha=0.0)
    x = torch.randn(4, 1, 32, 64)
    targets = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1])
    in_len, tgt_len = torch.full((4,), 16), torch.tensor([3, 3, 3, 3])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = fn(model(x), targets, in_len, tgt_len)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
