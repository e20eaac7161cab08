"""The resident model follows the registry and says when it switched."""

from pathlib import Path

from engine.modelpkg import REFERENCE_FILES, SERVED_DEFAULT
from workers.runtime import ModelHolder

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_a_swap_is_announced_once_with_the_new_label():
    active = ["served", str(MODELS / SERVED_DEFAULT)]
    announced: list[str] = []
    holder = ModelHolder(lambda: tuple(active), poll_s=3600, threads=1, on_switch=announced.append)
    assert holder.current().label == "served" and announced == []
    assert holder.refresh() is False and announced == []  # nothing changed
    active[:] = ["promoted", str(MODELS / REFERENCE_FILES["ppocrv6-tiny"])]
    assert holder.refresh() is True
    assert holder.current().label == "promoted" and announced == ["promoted"]
