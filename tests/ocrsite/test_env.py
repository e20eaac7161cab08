import pytest
from django.core.exceptions import ImproperlyConfigured

from ocrsite.settings.env import env_bool, env_float, env_int, env_list


def test_typed_readers_parse_and_default(monkeypatch):
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_FLOAT", "0.25")
    monkeypatch.setenv("X_BOOL", "off")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_int("X_INT", 1) == 42 and env_int("X_MISSING", 7) == 7
    assert env_float("X_FLOAT", 1.0) == 0.25
    assert env_bool("X_BOOL", True) is False
    assert env_list("X_LIST", []) == ["a", "b", "c"]


@pytest.mark.parametrize("reader,value", [(env_int, "4.5"), (env_float, "fast"), (env_bool, "maybe"), (env_int, "-1")])
def test_a_bad_value_fails_loudly(monkeypatch, reader, value):
    monkeypatch.setenv("X_BAD", value)
    with pytest.raises(ImproperlyConfigured, match="X_BAD"):
        reader("X_BAD", 1, minimum=0) if reader is not env_bool else reader("X_BAD", True)
