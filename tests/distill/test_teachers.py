import torch

from distill.charset import load_charset
from distill.models import build
from distill.teachers import CrnnTeacher, class_mapping


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
    batch = {"targets": torch.tensor(cs.encode("发票") + cs.encode("票鼾")), "target_lengths": torch.tensor([2, 2]),
             "input_lengths": torch.tensor([10, 12])}
    assert teacher.kd_lengths(batch).tolist() == [10, 0]
