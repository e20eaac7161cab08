import torch

from distill.losses import DistillationLoss, FeatureAdapter, ctc_kd_loss, feature_mimic_loss
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
    assert torch.allclose(base, ctc_kd_loss(s2, t2, lengths), rtol=1e-5, atol=1e-6)


def test_kd_loss_is_normalised_by_the_total_length():
    torch.manual_seed(1)
    s, t = torch.randn(1, 6, 5), torch.randn(1, 6, 5)
    one = ctc_kd_loss(s, t, torch.tensor([6]), temperature=1.0)
    twice = ctc_kd_loss(torch.cat([s, s]), torch.cat([t, t]), torch.tensor([6, 6]), temperature=1.0)
    assert torch.allclose(one, twice, rtol=1e-5, atol=1e-6)
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
    terms = fn(
        logits,
        torch.tensor([1, 2, 3, 4]),
        torch.tensor([10, 9]),
        torch.tensor([2, 2]),
        teacher_logits=torch.randn(2, 10, 6),
        student_features=torch.randn(2, 8, 1, 10),
        teacher_features=torch.randn(2, 16, 1, 10),
    )
    assert set(terms) == {"ctc", "kd", "feat", "total"}
    expected = 0.6 * terms["kd"] + 0.4 * terms["ctc"] + 0.5 * terms["feat"]
    assert torch.allclose(terms["total"], expected, rtol=1e-5, atol=1e-6)


def test_ctc_loss_decreases_on_a_tiny_fixed_batch():
    torch.manual_seed(0)
    model = CRNN(
        ShuffleNetV2Backbone(widths=(16, 32, 64), depths=(1, 1, 1), stem=8, out_channels=32), 12, rnn_hidden=16
    )
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


def test_top_k_kd_equals_the_dense_kl_when_the_teacher_lives_on_k_classes():
    from distill.losses import ctc_kd_loss, sparse_kd_loss, top_k_targets

    torch.manual_seed(3)
    student = torch.randn(2, 7, 50)
    teacher = torch.full((2, 7, 50), -1e4)
    hot = torch.randint(0, 50, (2, 7, 4))
    teacher.scatter_(-1, hot, torch.randn(2, 7, 4))
    lengths = torch.tensor([7, 5])
    dense = ctc_kd_loss(student, teacher, lengths, temperature=2.0)
    sparse = sparse_kd_loss(student, *top_k_targets(teacher, 4), lengths, temperature=2.0)
    assert torch.allclose(dense, sparse, atol=1e-5)


def test_top_k_kd_keeps_a_softened_teacher_on_what_it_reads():
    """Over thousands of classes a dense teacher softened at T=2 is mostly tail; the top-k one is not."""
    from distill.losses import ctc_kd_loss

    classes = 6000
    teacher = torch.full((1, 1, classes), 1e-6)
    teacher[0, 0, 5] = 1.0
    teacher = (teacher / teacher.sum(-1, keepdim=True)).log()
    right = torch.full((1, 1, classes), -20.0)
    right[0, 0, 5] = 20.0  # a confident student reading what the teacher reads
    lengths = torch.tensor([1])
    fn = DistillationLoss(alpha=1.0, temperature=2.0, top_k=8)
    sparse = fn(right, torch.tensor([5]), lengths, torch.tensor([1]), teacher_logits=teacher)["kd"]
    dense = ctc_kd_loss(right, teacher, lengths, temperature=2.0)
    assert sparse < 0.5 and dense > 10 * sparse


def test_top_k_kd_ignores_time_steps_beyond_each_length():
    from distill.losses import sparse_kd_loss, top_k_targets

    torch.manual_seed(4)
    student, teacher = torch.randn(2, 6, 30), torch.randn(2, 6, 30)
    lengths = torch.tensor([4, 6])
    base = sparse_kd_loss(student, *top_k_targets(teacher, 5), lengths)
    student[0, 4:] = torch.randn(2, 30) * 50
    assert torch.allclose(base, sparse_kd_loss(student, *top_k_targets(teacher, 5), lengths), rtol=1e-5, atol=1e-6)


def _tiny_crnn():
    return CRNN(
        ShuffleNetV2Backbone(widths=(16, 32, 64), depths=(1, 1, 1), stem=8, out_channels=32),
        12,
        rnn_hidden=16,
        dropout=0.0,
    )


def test_packed_head_gives_the_padded_losses_and_gradients():
    """The classifier on valid timesteps only: same CTC, top-k KD and dense KD values, same
    gradients, as the padded logits."""
    torch.manual_seed(5)
    x = torch.randn(3, 1, 32, 48)
    lengths, kd_lengths = torch.tensor([12, 7, 3]), torch.tensor([12, 0, 3])
    targets, target_lengths = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([3, 2, 1])
    teacher = torch.randn(3, 12, 12) * 3
    results = []
    for packed in (False, True):
        torch.manual_seed(6)
        model = _tiny_crnn()
        features = model.forward_features(x)
        logits = model.forward_head_packed(features, lengths) if packed else model.forward_head(features)
        dense = DistillationLoss(alpha=0.6, top_k=0)(
            logits, targets, lengths, target_lengths, teacher_logits=teacher, kd_lengths=kd_lengths
        )
        sparse = DistillationLoss(alpha=0.6, top_k=3)(
            logits, targets, lengths, target_lengths, teacher_logits=teacher, kd_lengths=kd_lengths
        )
        (dense["total"] + sparse["total"]).backward()
        results.append(
            (
                {k: v.detach() for k, v in {**dense, "kd3": sparse["kd"]}.items()},
                model.classifier.weight.grad.clone(),
                next(model.backbone.parameters()).grad.clone(),
            )
        )
    (padded, wp, bp), (packed, wk, bk) = results
    assert set(padded) == {"ctc", "kd", "kd3", "total"}
    for name in padded:
        assert torch.allclose(padded[name], packed[name], atol=1e-5), name
    assert torch.allclose(wp, wk, atol=1e-5) and torch.allclose(bp, bk, atol=1e-5)


def test_packed_head_computes_only_the_valid_rows():
    torch.manual_seed(7)
    model = _tiny_crnn().eval()
    features = model.forward_features(torch.randn(2, 1, 32, 40))
    lengths = torch.tensor([10, 4])
    packed = model.forward_head_packed(features, lengths)
    assert packed.values.shape == (14, 12)
    padded = model.forward_head(features)
    assert torch.allclose(packed.values, torch.cat([padded[0, :10], padded[1, :4]]), atol=1e-6)


def test_ctc_over_each_lines_labels_equals_torch_ctc_with_gradients():
    """Repeated labels, an empty label and a label too long for its line included."""
    from distill.losses import Packed, ctc_loss, time_mask

    torch.manual_seed(0)
    for trial in range(6):
        n, steps, classes = 5, 30, 40
        logits = (torch.randn(n, steps, classes) * 3).requires_grad_()
        lengths = torch.randint(1, steps + 1, (n,))
        lengths[0] = steps
        target_lengths = torch.randint(1, 12, (n,))
        target_lengths[1] = 0
        target_lengths[2], lengths[2] = 20, 10  # cannot fit: counts 0
        targets = torch.randint(1, 4 if trial % 2 else classes, (int(target_lengths.sum()),))  # few classes: repeats
        ref = torch.nn.functional.ctc_loss(
            logits.log_softmax(-1).permute(1, 0, 2),
            targets,
            lengths,
            target_lengths,
            reduction="mean",
            zero_infinity=True,
        )
        mask = time_mask(lengths, steps)
        for ours in (
            ctc_loss(logits, targets, lengths, target_lengths),
            ctc_loss(Packed(logits[mask], mask), targets, lengths, target_lengths),
        ):
            assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)
            (g_ours,) = torch.autograd.grad(ours, logits)
            (g_ref,) = torch.autograd.grad(ref, logits, retain_graph=True)
            assert torch.allclose(g_ours, g_ref, atol=1e-4)
