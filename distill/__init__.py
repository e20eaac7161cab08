"""Training side of the OCR platform: charset, synthetic data, CRNN teacher and
student, CTC knowledge distillation, evaluation and ONNX export (PyTorch)."""
