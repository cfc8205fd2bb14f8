"""Pure planning: the key, the metadata and the upload shape of one file. No I/O, no awaits.

Everything here is a function of a file's stat values and the run's options, so it is unit-tested directly,
including for files far larger than any test could create.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from ..config import MAX_PART_SIZE_BYTES, MIB, TIB, Compare, Overwrite
from ..errors import FileTooLargeError, InvalidKeyError

MAX_PARTS: Final = 10_000
MAX_OBJECT_SIZE_BYTES: Final = 5 * TIB
MAX_KEY_BYTES: Final = 1024


def object_key(prefix: str, rel: str) -> str:
    """The object key for a file: the prefix plus its relative path, byte for byte as named on disk.

    No Unicode normalisation and no escaping: a name that is not valid UTF-8 (Python keeps its bytes as
    surrogate escapes) cannot be an S3 key and is refused rather than silently renamed.
    """
    key = prefix + rel
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(f"file name is not valid UTF-8: {rel.encode('utf-8', 'surrogateescape')!r}") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key is {len(encoded)} bytes, over S3's limit of {MAX_KEY_BYTES}")
    return key


def format_mtime(mtime_ns: int) -> str:
    """Seconds since the epoch with nine decimals (``1700000000.123456789``), the form rclone reads."""
    sign = "-" if mtime_ns < 0 else ""
    seconds, nanos = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{sign}{seconds}.{nanos:09d}"


def parse_mtime(text: str) -> int:
    """Inverse of ``format_mtime``: nanoseconds since the epoch, exact (no float rounding)."""
    negative = text.startswith("-")
    seconds, _, frac = text.lstrip("-").partition(".")
    value = int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -value if negative else value


def object_metadata(size: int, mtime_ns: int, mode: int) -> dict[str, str]:
    """User metadata every object carries: size in decimal, mtime as above, st_mode in octal (``100644``)."""
    return {"size": str(size), "mtime": format_mtime(mtime_ns), "mode": f"{mode:o}"}


@dataclass(frozen=True, slots=True)
class PartPlan:
    """One part of a multipart upload: 1-based number and the byte range ``[offset, offset + size)``."""

    number: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """How one file goes up: a single put (``part_size == 0``) or ``part_count`` parts of ``part_size``."""

    size: int
    part_size: int
    part_count: int

    @property
    def multipart(self) -> bool:
        return self.part_size > 0

    def part(self, number: int) -> PartPlan | None:
        """Part ``number`` (1-based), or ``None`` if the plan has no such part."""
        if not self.multipart or not 1 <= number <= self.part_count:
            return None
        offset = (number - 1) * self.part_size
        return PartPlan(number, offset, min(self.part_size, self.size - offset))

    def parts(self) -> Iterator[PartPlan]:
        """The parts, lazily: a 5 TiB file's 10,000 parts are never all held at once."""
        for index in range(self.part_count):
            offset = index * self.part_size
            yield PartPlan(index + 1, offset, min(self.part_size, self.size - offset))


def choose_part_size(size: int, part_size: int) -> int:
    """``part_size``, grown to a whole number of MiB if the file would otherwise need over 10,000 parts."""
    needed = math.ceil(size / MAX_PARTS)
    if needed <= part_size:
        return part_size
    return math.ceil(needed / MIB) * MIB


def plan_upload(size: int, *, part_size: int, multipart_threshold: int) -> UploadPlan:
    """Single put below the threshold (and for empty files), multipart at or above it; over 5 TiB is refused."""
    if size > MAX_OBJECT_SIZE_BYTES:
        raise FileTooLargeError(f"file is {size} bytes, over S3's 5 TiB limit for one object")
    if size < multipart_threshold or size == 0:
        return UploadPlan(size=size, part_size=0, part_count=1)
    chosen = choose_part_size(size, part_size)
    assert chosen <= MAX_PART_SIZE_BYTES  # 5 TiB / 10,000 parts is ~525 MiB
    return UploadPlan(size=size, part_size=chosen, part_count=max(1, math.ceil(size / chosen)))


@dataclass(frozen=True, slots=True)
class Listed:
    """A key as the destination's listing shows it (ETag without quotes)."""

    size: int
    etag: str
    md5: str = ""
    """The content's MD5 (hex) where the listing has it apart from the ETag (Azure's ``Content-MD5``)."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """What an earlier run uploaded, or verified, as a key (from the state file)."""

    size: int
    mtime_ns: int
    etag: str
    checksum: str = ""
    """The whole-object checksum the upload sent (``crc32:BASE64``...), ``""`` if none or not remembered."""


class Verdict(enum.Enum):
    UPLOAD = "upload"
    SKIP = "skip"
    ASK = "ask"
    """The listing and the state file cannot tell: read the object's metadata (one HEAD)."""
    HASH = "hash"
    """``--compare checksum``: the file's content decides (read it; see ``content_route``)."""


def compare_with_destination(
    size: int,
    mtime_ns: int,
    overwrite: Overwrite,
    listed: Listed | None,
    remembered: Remembered | None,
    compare: Compare = Compare.MTIME,
) -> Verdict:
    """Whether a file must go up, from its stat, what the listing shows for its key and what the state file
    remembers of it; ``ASK`` only when neither settles it.

    A remembered mtime is trusted only while the listing still shows the ETag and size it was remembered with:
    a different ETag means someone (or another machine) wrote the key since. With ``Compare.SIZE`` the listed size
    alone decides: never a HEAD.
    """
    if overwrite is Overwrite.ALWAYS or listed is None:
        return Verdict.UPLOAD
    if overwrite is Overwrite.NEVER:
        return Verdict.SKIP
    if listed.size != size:
        return Verdict.UPLOAD
    if compare is Compare.SIZE:
        return Verdict.SKIP
    if remembered is not None and remembered.size == size and remembered.etag == listed.etag:
        if remembered.mtime_ns == mtime_ns:
            return Verdict.SKIP  # with CHECKSUM too: a stat cache, as git's index (the file is not read)
        return Verdict.HASH if compare is Compare.CHECKSUM else Verdict.UPLOAD
    return Verdict.HASH if compare is Compare.CHECKSUM else Verdict.ASK


def unchanged_by_metadata(
    size: int, mtime_ns: int, stored_size: int, metadata: Mapping[str, str], compare: Compare = Compare.MTIME
) -> bool:
    """What a HEAD settles: the object has this file's size and carries its mtime (as this tool writes it); with
    ``Compare.SIZE``, the size alone."""
    if stored_size != size:
        return False
    if compare is Compare.SIZE:
        return True
    try:
        return parse_mtime(metadata.get("mtime", "")) == mtime_ns
    except ValueError:
        return False  # written by another tool, or by hand: upload ours


ETAG_PART_SIZES_BYTES: Final = (8 * MIB, 5 * MIB, 16 * MIB, 50 * MIB, 64 * MIB)
"""The part sizes other tools use by default (aws-cli and boto3 8 MiB, rclone and s5cmd 5 MiB, ...), tried after
ours to tell which wrote a multipart object."""


def multipart_etag_parts(etag: str) -> int | None:
    """N of a multipart ETag (``<32 hex>-N``), ``None`` for any other form."""
    digest, dash, count = etag.partition("-")
    if not dash or len(digest) != 32 or not count.isdigit() or not _is_hex(digest):
        return None
    return int(count)


def is_md5_etag(etag: str) -> bool:
    """Whether an ETag has the form of a single put's MD5 (32 hex digits)."""
    return len(etag) == 32 and _is_hex(etag)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def etag_part_sizes(size: int, parts: int, *, part_size: int, multipart_threshold: int) -> list[int]:
    """The part sizes, in the order worth trying, that split ``size`` bytes into exactly ``parts`` parts: ours first
    (what ``plan_upload`` picks for this file), then ``ETAG_PART_SIZES_BYTES``. Each is hashed beside the others in
    one read, so sizes that give the same N all stay candidates."""
    ours = plan_upload(size, part_size=part_size, multipart_threshold=multipart_threshold).part_size or part_size
    found: list[int] = []
    for candidate in (ours, choose_part_size(size, part_size), *ETAG_PART_SIZES_BYTES):
        if candidate > 0 and math.ceil(size / candidate) == parts and candidate not in found:
            found.append(candidate)
    return found
