"""CRC32 checksums in the form S3 speaks (base64 of the big-endian 32-bit value), and their composite.

CRC32 rather than MD5 or SHA-256: zlib's CRC32 runs at memory speed and releases the GIL, and S3 and its
compatibles verify ``x-amz-checksum-crc32`` on every put and part, refusing a body damaged in transit.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable


def crc32_digest(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def crc32_of(data: bytes | memoryview) -> str:
    return crc32_digest(zlib.crc32(data))


def composite_crc32(part_checksums: Iterable[str]) -> str:
    """The multipart object checksum S3 reports: CRC32 of the parts' raw CRC32s, then ``-N``."""
    raw = [base64.b64decode(checksum) for checksum in part_checksums]
    return f"{crc32_digest(zlib.crc32(b''.join(raw)))}-{len(raw)}"
