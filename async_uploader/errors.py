"""The exceptions async-uploader raises, in one small hierarchy.

Run-level errors (bad options, missing source, unusable credentials, endpoint or bucket) stop a run before
anything is uploaded; the CLI prints their message as one line and exits 2. File-level errors never escape a
run: they become a ``FileFailed`` event and an entry in ``UploadResult.failures``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class UploaderError(Exception):
    """Base class of every error async-uploader raises on purpose; its message is meant for a user."""


class ConfigError(UploaderError):
    """An option or argument is invalid (a size that does not parse, a source that is not a directory...)."""


class CredentialsError(UploaderError):
    """No credentials were found, or the store rejected them."""


class ReadDeniedError(CredentialsError):
    """The credentials may not list or read the bucket (a write-only role): a run can still upload everything,
    with nothing to compare against."""


class EndpointError(UploaderError):
    """The object store could not be reached at all (DNS, refused connection, TLS)."""


class BucketError(UploaderError):
    """The bucket does not exist or cannot be written with these credentials."""


class ClusterError(UploaderError):
    """The Dask cluster of ``--dask`` could not be reached, had no worker, or could not finish a shard."""


class DeleteRefusedError(UploaderError):
    """``--delete`` deleted nothing, on purpose: a guard held (an empty source, more deletions than
    ``--max-delete``, a destination listing that failed). The uploads themselves ran to their end."""


class FileError(UploaderError):
    """One file could not be uploaded; the run goes on and reports it."""


class FileTooLargeError(FileError):
    """The file is larger than the store accepts for one object."""


class InvalidKeyError(FileError):
    """The file's name cannot become an object key (not UTF-8, too long)."""


class FileChangedError(FileError):
    """The file changed while it was being read, so what was read may be torn."""


class StoreError(FileError):
    """The store refused or failed a request for one object.

    ``retryable`` says whether trying again may succeed (a connection reset, a timeout, a 5xx); ``throttled``
    says the store asked us to slow down (503 SlowDown and kin), which also lowers the run's concurrency;
    ``denied`` says the credentials may not do this (403), as a publish-only role may not list or read.
    """

    def __init__(self, message: str, *, retryable: bool = False, throttled: bool = False, denied: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable or throttled
        self.throttled = throttled
        self.denied = denied


class VerificationError(FileError):
    """The store's answer does not match what was sent (checksum, size or part count)."""


@contextlib.contextmanager
def ungroup_run_errors() -> Iterator[None]:
    """Raise bare the run-level error that a task group in the block wrapped in an exception group.

    A task group reports what its tasks (or its own body) raised as an ``ExceptionGroup``; callers are promised
    the ``UploaderError`` itself (``BucketError``, ``CredentialsError``...), as a user can act on it. The first one
    in the group is raised; a group holding none (a bug) goes on as it is, and cancellation is never touched.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        run_level = group.subgroup(lambda exc: isinstance(exc, UploaderError))
        if run_level is None:
            raise
        first: BaseException = run_level
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
