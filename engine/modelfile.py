"""A model file read without running it: its sha256 and its metadata (``metadata_props``), parsed
from the ONNX protobuf's top-level fields without ONNX Runtime or the ``onnx`` package, so the
web process can register and describe models while loading neither."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

# ModelProto field numbers (onnx/onnx.proto3): 14 is ``repeated StringStringEntryProto
# metadata_props``, whose entries carry ``key`` (1) and ``value`` (2).
_METADATA_PROPS, _KEY, _VALUE = 14, 1, 2
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class ModelFileError(ValueError):
    """The file is not an ONNX model (its protobuf cannot be walked)."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (what ONNX Runtime's ``custom_metadata_map``
    gives), read by skipping every other top-level field, the graph's weights included."""
    out: dict[str, str] = {}
    with open(path, "rb") as fh:
        size = Path(path).stat().st_size
        while fh.tell() < size:
            field, wire = _tag(fh)
            if wire == _BYTES:
                length = _varint(fh)
                if field == _METADATA_PROPS:
                    key, value = _entry(_read(fh, length))
                    out[key] = value
                else:
                    fh.seek(length, 1)
            elif wire == _VARINT:
                _varint(fh)
            elif wire in (_FIXED64, _FIXED32):
                fh.seek(8 if wire == _FIXED64 else 4, 1)
            else:
                raise ModelFileError(f"{path}: not an ONNX model (wire type {wire} at the top level)")
        if fh.tell() != size:
            raise ModelFileError(f"{path}: not an ONNX model (a field runs past the end of the file)")
    return out


def _entry(data: bytes) -> tuple[str, str]:
    fields, pos = {}, 0
    while pos < len(data):
        tag, pos = _varint_at(data, pos)
        if tag & 7 != _BYTES:
            raise ModelFileError("a metadata entry holds a field that is not a string")
        length, pos = _varint_at(data, pos)
        fields[tag >> 3] = data[pos : pos + length].decode("utf-8")
        pos += length
    return fields.get(_KEY, ""), fields.get(_VALUE, "")


def _tag(fh: BinaryIO) -> tuple[int, int]:
    tag = _varint(fh)
    return tag >> 3, tag & 7


def _read(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ModelFileError("not an ONNX model (a field runs past the end of the file)")
    return data


def _varint(fh: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = fh.read(1)
        if not byte:
            raise ModelFileError("not an ONNX model (the file ends inside a number)")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ModelFileError("not an ONNX model (a number longer than 64 bits)")


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ModelFileError("a metadata entry ends inside a number")
