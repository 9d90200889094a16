"""Reading the CSV members of a vendor zip, damaged or not.

Every CSV member is read (every member when none is named ``*.csv``), in archive order: a zip
that holds a stray file beside the real CSV loses nothing. A damaged archive still yields what
inflates: a zip whose central directory is gone gives the bytes of its first local member that
inflate before the damage; a member that fails to inflate midway gives its bytes up to there.
Such bytes may end in the middle of a line (``maybe_cut``).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass
class ZipPart:
    """One member's bytes (None: nothing readable) and what went wrong reading it."""

    name: str
    data: bytes | None
    error: str | None = None
    maybe_cut: bool = False


def salvage_local_member(blob: bytes) -> bytes | None:
    """Inflate what can be inflated of the first member of a zip whose directory is gone."""
    if len(blob) < 30 or blob[:4] != b"PK\x03\x04":
        return None
    (method,) = struct.unpack_from("<H", blob, 8)
    name_len, extra_len = struct.unpack_from("<HH", blob, 26)
    payload = blob[30 + name_len + extra_len :]
    if method == 0:
        return payload
    if method != 8:
        return None
    inflater = zlib.decompressobj(-15)
    out = bytearray()
    step = 1 << 20
    try:
        for i in range(0, len(payload), step):
            out += inflater.decompress(payload[i : i + step])
            if inflater.eof:
                break
    except zlib.error:
        pass
    return bytes(out)


def _read_member(zf: zipfile.ZipFile, member: str) -> ZipPart:
    try:
        return ZipPart(member, zf.read(member))
    except _ERRORS:
        pass
    out = bytearray()  # damaged member: keep what inflates before the damage
    try:
        with zf.open(member) as fh:
            while chunk := fh.read(1 << 16):
                out += chunk
    except _ERRORS as exc:
        return ZipPart(member, bytes(out), f"damaged member {member}: {exc}", True)
    return ZipPart(member, bytes(out))


def read_zip_members(path: Path) -> list[ZipPart]:
    """The CSV members of ``path`` (see the module documentation); never raises on content.

    A file that is not readable at all gives one part with ``data=None`` and the error."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        return [ZipPart("", None, f"cannot read file: {exc}")]
    try:
        zf = zipfile.ZipFile(BytesIO(blob))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        partial = salvage_local_member(blob)
        if partial is None:
            return [ZipPart("", None, f"not a readable zip: {exc}")]
        why = f"damaged zip, salvaged {len(partial)} bytes of its member: {exc}"
        return [ZipPart("", partial, why, True)]
    with zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        if not names:
            return [ZipPart("", None, "zip has no member")]
        csvs = [nm for nm in names if nm.lower().endswith(".csv")]
        return [_read_member(zf, nm) for nm in (csvs or names)]
