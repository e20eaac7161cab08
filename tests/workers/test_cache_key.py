from engine.cachekey import cache_key, preprocessing_signature


def test_same_image_model_and_settings_share_a_key():
    assert cache_key("abc", "m@1", preprocessing_signature(False)) == cache_key(
        "abc", "m@1", preprocessing_signature(False)
    )


def test_the_key_changes_with_the_image_the_model_and_the_preprocessing():
    base = cache_key("abc", "m@1", preprocessing_signature(False))
    assert cache_key("abd", "m@1", preprocessing_signature(False)) != base
    assert cache_key("abc", "m@2", preprocessing_signature(False)) != base
    assert cache_key("abc", "m@1", preprocessing_signature(True)) != base
    assert cache_key("abc", "m@1", preprocessing_signature(False, sharpen=False)) != base


def test_the_page_models_are_part_of_the_key(settings, tmp_path):
    from workers.config import pipeline_signature

    det, other = tmp_path / "det.onnx", tmp_path / "det2.onnx"
    det.write_bytes(b"one detector")
    other.write_bytes(b"another detector")
    signatures = []
    for path in (det, other, ""):
        settings.OCR_DETECTOR_MODEL, settings.OCR_DIRECTION_MODEL = str(path), ""
        pipeline_signature.cache_clear()
        signatures.append(pipeline_signature())
    pipeline_signature.cache_clear()
    assert len(set(signatures)) == 3  # another detector, or none, never reads another's cached text
    assert signatures[2].startswith(preprocessing_signature(settings.OCR_BINARIZE, sharpen=settings.OCR_SHARPEN) + "-")


def test_the_decoder_and_its_language_model_are_part_of_the_key(settings, tmp_path):
    from workers.config import lm_sha256, pipeline_signature

    lm, other = tmp_path / "a.arpa", tmp_path / "b.arpa"
    lm.write_text("one model")
    other.write_text("another model")
    signatures = []
    for path, mode, alpha in ((lm, "beam", 0.4), (other, "beam", 0.4), (lm, "greedy", 0.4), (lm, "beam", 0.5)):
        settings.OCR_LM_MODEL, settings.OCR_DECODER, settings.OCR_LM_ALPHA = str(path), mode, alpha
        lm_sha256.cache_clear()
        pipeline_signature.cache_clear()
        signatures.append(pipeline_signature())
    lm_sha256.cache_clear()
    pipeline_signature.cache_clear()
    assert len(set(signatures)) == 4


def test_hotwords_have_their_own_entry_whatever_their_order():
    base = cache_key("abc", "m@1", "p")
    assert cache_key("abc", "m@1", "p", ["华为", "票"]) == cache_key("abc", "m@1", "p", ["票", "华为"]) != base
    assert cache_key("abc", "m@1", "p", ["华为"]) != cache_key("abc", "m@1", "p", ["华为", "票"])


def test_the_cascade_model_and_threshold_are_part_of_the_key(settings, tmp_path):
    from workers.config import cascade_signature, pipeline_signature

    model, other = tmp_path / "a.onnx", tmp_path / "b.onnx"
    model.write_bytes(b"one recogniser")
    other.write_bytes(b"another recogniser")
    signatures = []
    for path, below in ((model, 0.7), (other, 0.7), (model, 0.8), ("", 0.7), (model, 0.0)):
        settings.OCR_CASCADE_MODEL, settings.OCR_CASCADE_BELOW = str(path), below
        cascade_signature.cache_clear()
        pipeline_signature.cache_clear()
        signatures.append(pipeline_signature())
    cascade_signature.cache_clear()
    pipeline_signature.cache_clear()
    assert len(set(signatures[:4])) == 4  # another model or threshold never reads another's cached text
    assert signatures[3] == signatures[4]  # off is off, whichever way
