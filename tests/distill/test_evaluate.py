from distill.evaluate import clean_for_scoring, edit_distance


def test_edit_distance_counts_code_point_insertions_deletions_and_substitutions():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("发票号码", "发票码") == 1  # a dropped character
    assert edit_distance("", "增值税") == 3 and edit_distance("增值税", "") == 3
    assert edit_distance("话费", "話费") == 1


def test_scoring_folds_width_and_drops_whitespace():
    assert clean_for_scoring("金额： 1２3") == "金额:123"
