from workers.engine.cachekey import cache_key, preprocessing_signature


def test_same_image_model_and_settings_share_a_key():
    assert cache_key("abc", "m@1", preprocessing_signature(False)) == cache_key("abc", "m@1", preprocessing_signature(False))


def test_the_key_changes_with_the_image_the_model_and_the_preprocessing():
    base = cache_key("abc", "m@1", preprocessing_signature(False))
    assert cache_key("abd", "m@1", preprocessing_signature(False)) != base
    assert cache_key("abc", "m@2", preprocessing_signature(False)) != base
    assert cache_key("abc", "m@1", preprocessing_signature(True)) != base
