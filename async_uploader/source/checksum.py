"""Checksums in the form S3 speaks (base64 of the big-endian digest), their multipart forms, and CRC arithmetic.

Every body carries a checksum header the server verifies, refusing a body damaged in transit (``--checksum``):
CRC32 by default (zlib-ng where the ``fast`` extra installed it, many times faster than the stdlib's zlib, else
the stdlib's zlib; both release the GIL), CRC32C (Castagnoli, hardware accelerated by ``google-crc32c``, the optional
``[crc32c]`` extra), or SHA-256 (hashlib; slower, for those who want a cryptographic digest). For a multipart
upload S3 offers two object checksums: COMPOSITE, a checksum of the parts' checksums suffixed ``-N``, and
FULL_OBJECT (CRC only), the CRC of the whole file, which is what a user can compare with the local file. The full
CRC is combined from the parts' CRCs here (``crc_combine``), so no byte is read twice.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Final

from ..errors import ConfigError, VerificationError


class Algorithm(enum.Enum):
    CRC32 = "crc32"
    CRC32C = "crc32c"
    SHA256 = "sha256"

    @property
    def is_crc(self) -> bool:
        return self is not Algorithm.SHA256


@dataclass(frozen=True, slots=True)
class Checksum:
    """A body's checksum as S3 names it: the algorithm, and the base64 digest (``-N`` suffixed if composite)."""

    algorithm: Algorithm
    value: str


def parse_algorithm(text: str) -> Algorithm | None:
    """``crc32``, ``crc32c``, ``sha256`` or ``none`` (``None``: no checksum header at all)."""
    if text.lower() == "none":
        return None
    try:
        algorithm = Algorithm(text.lower())
    except ValueError:
        raise ConfigError(f"--checksum must be one of crc32, crc32c, sha256, none, got {text!r}") from None
    if algorithm is Algorithm.CRC32C:
        _crc32c_module()
    return algorithm


def _crc32c_module() -> ModuleType:
    try:
        import google_crc32c  # optional: only --checksum crc32c needs it
    except ImportError:
        raise ConfigError("--checksum crc32c needs the crc32c extra: pip install 'async-uploader[crc32c]'") from None
    return google_crc32c


def _crc32_function() -> Callable[[bytes | memoryview, int], int]:
    """zlib-ng's CRC32 (same polynomial and results as zlib's, folding with PCLMULQDQ) when installed: on large
    files the stdlib's CRC32 is a third of the client's CPU."""
    try:
        from zlib_ng import zlib_ng  # optional: the fast extra
    except ImportError:
        return zlib.crc32
    return zlib_ng.crc32


_crc32: Final = _crc32_function()

CRC32C_SLICE_BYTES: Final = 1024 * 1024


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C, continuing from ``crc``. google-crc32c takes only ``bytes``, so a buffer is fed in 1 MiB copies:
    a part's bytes are never held twice."""
    extend = _crc32c_module().extend
    if isinstance(data, bytes):
        return int(extend(crc, data))
    for start in range(0, len(data), CRC32C_SLICE_BYTES):
        crc = int(extend(crc, bytes(data[start : start + CRC32C_SLICE_BYTES])))
    return crc


class Digest:
    """A running checksum of one body, fed as the bytes are read."""

    __slots__ = ("_crc", "_sha", "algorithm")

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self._crc = 0
        self._sha = hashlib.sha256() if algorithm is Algorithm.SHA256 else None

    def update(self, data: bytes | memoryview) -> None:
        if self._sha is not None:
            self._sha.update(data)
        elif self.algorithm is Algorithm.CRC32:
            self._crc = _crc32(data, self._crc)
        else:
            self._crc = crc32c(data, self._crc)

    @property
    def crc(self) -> int:
        """The raw CRC, to combine into a full-object CRC (CRC algorithms only)."""
        return self._crc

    def checksum(self) -> Checksum:
        if self._sha is not None:
            return Checksum(self.algorithm, base64.b64encode(self._sha.digest()).decode("ascii"))
        return Checksum(self.algorithm, _crc_base64(self._crc))


def checksum_of(algorithm: Algorithm, data: bytes | memoryview) -> Checksum:
    digest = Digest(algorithm)
    digest.update(data)
    return digest.checksum()


def _crc_base64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def composite(checksums: Iterable[Checksum]) -> Checksum:
    """The COMPOSITE multipart checksum S3 reports: the checksum of the parts' raw checksums, then ``-N``."""
    parts = list(checksums)
    algorithm = parts[0].algorithm
    joined = checksum_of(algorithm, b"".join(base64.b64decode(part.value) for part in parts))
    return Checksum(algorithm, f"{joined.value}-{len(parts)}")


# CRC combination (as zlib's crc32_combine): CRC(A + B) = CRC(A) * x^(8 * len(B)) mod P, xor CRC(B), in the
# reflected bit order the CRC32 and CRC32C registers use.
_POLYNOMIALS: Final = {Algorithm.CRC32: 0xEDB88320, Algorithm.CRC32C: 0x82F63B78}
_TOP_BIT: Final = 1 << 31


def _multiply(a: int, b: int, poly: int) -> int:
    """a * b modulo the polynomial, both reflected."""
    product = 0
    m = _TOP_BIT
    while m:
        if a & m:
            product ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return product


@lru_cache(maxsize=64)
def _x_to_8n(n: int, poly: int) -> int:
    """x^(8n) modulo the polynomial: cached, since every part but the last has the same length."""
    result = _TOP_BIT  # x^0
    square = 1 << 30  # x^1, reflected
    k = 8 * n
    # Square-and-multiply over the bits of 8n.
    while k:
        if k & 1:
            result = _multiply(square, result, poly)
        square = _multiply(square, square, poly)
        k >>= 1
    return result


def crc_combine(algorithm: Algorithm, crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC of A followed by B, from the CRCs of A and of B (``length_b`` bytes)."""
    poly = _POLYNOMIALS[algorithm]
    return _multiply(_x_to_8n(length_b, poly), crc_a, poly) ^ crc_b


def full_object_crc(algorithm: Algorithm, parts: Iterable[tuple[int, int]]) -> Checksum:
    """The CRC of the whole object from its parts' ``(crc, length)`` in order."""
    total = 0
    for crc, length in parts:
        total = crc_combine(algorithm, total, crc, length)
    return Checksum(algorithm, _crc_base64(total))


def verify_stored_checksum(stored: str | None, sent: Checksum | None, *, what: str = "") -> None:
    """Refuse a store's answer whose checksum is not the one sent (``VerificationError``, prefixed ``what``).

    A store that reports no checksum (moto, a store without checksums) is not a mismatch: it checked the header
    or ignored it, and the size is checked on its own; the file is then reported as checked by size only
    (``FileDone.verified``), never as verified.
    """
    if sent is not None and stored is not None and stored != sent.value:
        raise VerificationError(f"{what}store computed {sent.algorithm.name} {stored}, expected {sent.value}")
