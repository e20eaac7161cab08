import pytest

from workers.modelpkg import ModelPackageError, ModelSpec


def good(**kw):
    base = dict(
        name="m", classes=("", "a"), blank_index=0, input_height=32, input_channels=1, color_order="GRAY",
        norm_mean=(0.5,), norm_std=(0.5,),
    )
    base.update(kw)
    return ModelSpec(**base)


def test_metadata_round_trips():
    spec = good(classes=("", "中", "文", " "), extra={"params": "123"})
    assert ModelSpec.from_metadata(spec.to_metadata()) == spec


@pytest.mark.parametrize(
    "kw",
    [
        dict(blank_index=5),
        dict(classes=("x", "a")),
        dict(input_channels=3),
        dict(norm_std=(0.0,)),
        dict(output_kind="softmaxish"),
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
