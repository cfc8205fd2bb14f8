"""Which open multipart upload of a file to continue, and which of its parts may be reused.

A run killed mid-file (or interrupted with ``--keep-partial``) leaves its upload open; the next run continues it
rather than sending every part again. An upload is only continued when it is provably of this very version of
the file, and a part only when its bytes still match; every other open upload of the key is aborted, so that it
stops being billed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..providers.base import IncompleteUpload, ObjectStore, UploadedPart
from ..source.reader import digest_range
from .multipart import FileUpload, ResumePoint, abort_upload, checksum_mode
from .retry import RetryPolicy
from .state import OpenUpload


async def find_resume_point(
    job: FileUpload, open_uploads: Sequence[tuple[IncompleteUpload, OpenUpload | None]]
) -> tuple[ResumePoint | None, list[str]]:
    """Pick the upload to resume among the key's open uploads, and the ids of the others (to abort).

    Only an upload this machine created for the same size, mtime, part size and checksums qualifies (a store
    cannot tell an upload's metadata, so one created for another version of the file would store the wrong
    one), and only parts whose bytes still match the file are reused: each is read again and compared with its
    listed checksum or, failing that, its ETag where that is the part's MD5 (S3 and its compatibles, but not under
    SSE-KMS or SSE-C, whose ETags are no MD5: a part without a listed checksum is then sent again).
    """
    entry, plan = job.entry, job.plan
    modes = {checksum_mode(job.algorithm, full) for full in (False, True)}
    ours = sorted(
        (
            (upload, record)
            for upload, record in open_uploads
            if record is not None
            and (record.size, record.mtime_ns, record.part_size) == (entry.size, entry.mtime_ns, plan.part_size)
            and record.checksum in modes
        ),
        key=lambda found: found[0].initiated,
        reverse=True,
    )
    if not ours:
        return None, [upload.upload_id for upload, _ in open_uploads]
    chosen, record = ours[0]
    others = [upload.upload_id for upload, _ in open_uploads if upload.upload_id != chosen.upload_id]
    reused: dict[int, UploadedPart] = {}
    crcs: dict[int, int] = {}
    for stored in await job.request(lambda: job.store.list_parts(job.key, chosen.upload_id, headers=job.headers)):
        part = plan.part(stored.number)
        if part is None or part.size != stored.size:
            continue
        digest = await digest_range(
            entry.path, part.offset, part.size, size=entry.size, mtime_ns=entry.mtime_ns, algorithm=job.algorithm
        )
        if stored.checksum is not None and digest.checksum is not None:
            matches = stored.checksum == digest.checksum
        elif job.headers.etags_are_md5:
            matches = stored.etag.strip('"') == digest.md5
        else:
            matches = False
        if matches:
            reused[stored.number] = UploadedPart(stored.number, stored.etag, digest.checksum)
            crcs[stored.number] = digest.crc
    if not reused:
        return None, [*others, chosen.upload_id]
    return ResumePoint(chosen.upload_id, record.checksum.endswith("/full"), reused, crcs), others


async def abort_uploads(store: ObjectStore, key: str, upload_ids: Sequence[str], policy: RetryPolicy) -> None:
    """Abort uploads of ``key`` that cannot be reused, so they stop being billed."""
    for upload_id in upload_ids:
        await abort_upload(store, key, upload_id, policy)
