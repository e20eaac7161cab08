import pytest

from engine.modelpkg import ModelPackageError, ModelSpec


def good(**kw):
    base = dict(
        name="m",
        classes=("", "a"),
        blank_index=0,
        input_height=32,
        input_channels=1,
        color_order="GRAY",
        norm_mean=(0.5,),
        norm_std=(0.5,),
    )
    base.update(kw)
    return ModelSpec(**base)


def test_metadata_round_trips():
    spec = good(classes=("", "中", "文", " "), extra={"params": "123"}, blank_penalty=1.25, text_forms="nfkc")
    back = ModelSpec.from_metadata(spec.to_metadata())
    assert back == spec and back.blank_penalty == 1.25 and back.text_forms == "nfkc"


def test_the_optional_keys_default_to_decoding_as_trained():
    meta = good().to_metadata()
    del meta["ocr.blank_penalty"], meta["ocr.text_forms"]
    spec = ModelSpec.from_metadata(meta)
    assert spec.blank_penalty == 0.0 and spec.text_forms == "as_is"
    assert spec.finish_text("名称:张三") == "名称:张三"
    assert good(text_forms="nfkc").finish_text("名称:张三") == "名称：张三"


@pytest.mark.parametrize(
    "kw",
    [
        dict(blank_index=5),
        dict(classes=("x", "a")),
        dict(input_channels=3),
        dict(norm_std=(0.0,)),
        dict(output_kind="softmaxish"),
        dict(blank_penalty=-1.0),
        dict(blank_penalty=float("nan")),
        dict(text_forms="fullwidth"),
    ],
)
def test_it_refuses_inconsistent_specs(kw):
    with pytest.raises(ModelPackageError):
        good(**kw)


def test_it_refuses_files_without_the_contract():
    with pytest.raises(ModelPackageError, match="not an OCR model package"):
        ModelSpec.from_metadata({"character": "abc"})
    meta = good().to_metadata()
    del meta["ocr.input_height"]
    with pytest.raises(ModelPackageError, match="ocr.input_height"):
        ModelSpec.from_metadata(meta)
