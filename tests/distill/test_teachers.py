import torch

from distill.models import build
from distill.teachers import CrnnTeacher, class_mapping
from engine.charset import load_charset


def test_teacher_classes_are_mapped_explicitly_after_nfkc():
    cs = load_charset()
    src, dst = class_mapping(["", "：", "发", "ゐ", " "], cs, 0)
    pairs = dict(zip(src.tolist(), dst.tolist()))
    assert pairs[0] == 0
    assert pairs[1] == cs.index[":"] and pairs[2] == cs.index["发"] and pairs[4] == cs.index[" "]
    assert 3 not in pairs


def test_crnn_teacher_is_frozen_and_in_eval_mode():
    model = build("student", 20)
    teacher = CrnnTeacher(model)
    logits, feats = teacher(torch.randn(1, 1, 32, 40))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert logits.shape == (1, 10, 20) and feats.shape[-1] == 10


def test_lines_with_characters_unknown_to_an_onnx_teacher_get_no_kd():
    from distill.teachers import OnnxCtcTeacher

    teacher = OnnxCtcTeacher.__new__(OnnxCtcTeacher)
    cs = load_charset()
    teacher.known = torch.zeros(len(cs), dtype=torch.bool)
    teacher.known[cs.encode("发票")] = True
    batch = {
        "targets": torch.tensor(cs.encode("发票") + cs.encode("票鼾")),
        "target_lengths": torch.tensor([2, 2]),
        "input_lengths": torch.tensor([10, 12]),
    }
    assert teacher.kd_lengths(batch).tolist() == [10, 0]


def test_an_onnx_teacher_runs_inside_the_data_workers_with_the_same_targets(tmp_path):
    """The distillation loader computes the per-line teacher in its worker process (another core);
    what arrives must equal running the teacher in the training process."""
    from distill.export import crnn_spec, export_onnx
    from distill.teachers import OnnxCtcTeacher
    from distill.train import train_loader

    cs = load_charset()
    torch.manual_seed(0)
    path = tmp_path / "tiny_teacher.onnx"
    export_onnx(build("student", 4).eval(), path, crnn_spec("tiny", ["", "发", "票", "1"]))
    teacher = OnnxCtcTeacher(str(path), cs)
    batch = next(iter(train_loader(cs, batch_size=3, total_steps=1, workers=1, teacher=teacher)))
    expected, _ = teacher(batch["images"], batch["input_lengths"])
    n, _, _, width = batch["images"].shape
    assert batch["teacher_logits"].shape == (n, width // 4, len(cs))
    assert torch.allclose(batch["teacher_logits"], expected, atol=1e-5)
    # the teacher puts mass on the characters it knows, and almost none on the others
    probs = batch["teacher_logits"][0, : int(batch["input_lengths"][0])].exp()
    known = [0] + cs.encode("发票1")
    assert torch.all(probs[:, known].sum(-1) > 0.99)


def test_the_workers_send_the_onnx_teachers_top_k_classes(tmp_path):
    from distill.export import crnn_spec, export_onnx
    from distill.losses import top_k_targets
    from distill.teachers import OnnxCtcTeacher
    from distill.train import train_loader

    cs = load_charset()
    torch.manual_seed(1)
    path = tmp_path / "tiny_teacher.onnx"
    export_onnx(build("student", 5).eval(), path, crnn_spec("tiny", ["", "发", "票", "1", "2"]))
    teacher = OnnxCtcTeacher(str(path), cs)
    batch = next(iter(train_loader(cs, batch_size=2, total_steps=1, workers=1, teacher=teacher, top_k=3)))
    assert "teacher_logits" not in batch
    dense, _ = teacher(batch["images"], batch["input_lengths"])
    idx, logp = top_k_targets(dense, 3)
    for k, t in enumerate(batch["input_lengths"].tolist()):
        sent_idx = batch["teacher_top_k_idx"][k, :t]
        # the classes sent carry the top-k probabilities (near-ties may come in either order on
        # another CPU's kernels, so the indices themselves are compared through their values)
        top_probs = dense[k, :t].log_softmax(-1).gather(-1, sent_idx.long()).exp()
        assert torch.allclose(top_probs, logp[k, :t].exp(), atol=1e-5)
        assert torch.allclose(batch["teacher_top_k_logp"][k, :t].exp(), logp[k, :t].exp(), atol=1e-5)
