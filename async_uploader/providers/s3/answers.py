"""What S3's answers mean to the uploader, whichever path a request took (the direct one or aiobotocore's).

Both stores read a failed request down to a status, an error code and a message, and hand them here: the same
answer is the same error, and the same message, on either path.
"""

from __future__ import annotations

from typing import Final

from ...errors import (
    BucketError,
    CredentialsError,
    EndpointError,
    FileError,
    ReadDeniedError,
    StoreError,
    UploaderError,
)
from ...source.checksum import Checksum, verify_stored_checksum
from .._errors import ErrorCodes, answer_error
from ..base import DeleteFailure, UploadedPart

CREDENTIAL_CODES: Final = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
S3_CODES: Final = ErrorCodes(
    verification=frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}),
    credentials=CREDENTIAL_CODES,
    throttle=frozenset(
        {
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TooManyRequests",
            "ServiceUnavailable",
        }
    ),
    transient=frozenset({"RequestTimeout", "InternalError", "RequestTimeTooSkewed", "OperationAborted"}),
    denied=frozenset({"AccessDenied", "403"}),
    denied_statuses=frozenset({403}),
)
# How a store that predates full-object checksums (2025) refuses ChecksumType.
UNSUPPORTED_CODES: Final = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented"})
NO_CREDENTIALS_HINT: Final = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / --profile"
)


POLICY_HINT: Final = (
    "a bucket policy denies this request explicitly: it may require encryption (--sse aws:kms, --sse-kms-key-id) "
    "or another header (--acl bucket-owner-full-control, --storage-class...)"
)


def detail(code: str, message: str | None) -> str:
    """An error answer as its messages quote it: ``Code: Message``, or the code alone; an explicit deny (AWS:
    "...with an explicit deny in a resource-based policy") with the hint that the policy wants a header."""
    text = f"{code}: {message}" if message else code
    if code == "AccessDenied" and message and "explicit deny" in message.lower():
        return f"{text} ({POLICY_HINT})"
    return text


def object_error(operation: str, status: int, code: str, message: str | None) -> FileError:
    """The error for an error answer to one object's request."""
    return answer_error(operation, status, code, detail(code, message), S3_CODES)


def full_object_refused(code: str, message: str | None) -> StoreError | None:
    """A CreateMultipartUpload that asked for a full-object checksum refused as an older S3 compatible refuses
    it: the store must ask for composite checksums from now on, and the engine tries again. ``None`` for any
    other refusal."""
    if code not in UNSUPPORTED_CODES:
        return None
    return StoreError(
        f"CreateMultipartUpload: {detail(code, message)}; trying again without a full-object checksum", retryable=True
    )


def bucket_refusal(bucket: str, endpoint: str, code: str, message: str | None) -> UploaderError:
    """Why a listing of the bucket was refused, as the one-line error the preflight raises."""
    if code in {"NoSuchBucket", "NotFound"}:
        return BucketError(f"bucket {bucket!r} does not exist at {endpoint}")
    if code in CREDENTIAL_CODES:
        return CredentialsError(
            f"the credentials were rejected ({code}): check the access key and secret, or --profile"
        )
    if code == "AccessDenied":
        return ReadDeniedError(f"cannot list bucket {bucket!r} ({code}): the credentials lack s3:ListBucket")
    if code in {"AllAccessDisabled", "AccountProblem"}:
        return CredentialsError(f"access to bucket {bucket!r} denied ({code}): the credentials lack permission")
    if code == "407":  # a forward proxy's answer, not the store's
        return EndpointError(
            "the proxy needs credentials, or refused those in its URL (407 Proxy Authentication Required)"
        )
    if not code or code.isdigit():  # no S3 error document: an HTML page, a proxy, another service
        return not_s3(endpoint)
    return BucketError(f"cannot use bucket {bucket!r}: {detail(code, message)}")


def wrong_region(bucket: str, region: str, detail: str) -> BucketError:
    """The bucket is in ``region`` and, even signed for it, the requests were refused."""
    return BucketError(f"bucket {bucket!r} is in region {region!r} (set --region {region}): {detail}")


def not_s3(endpoint: str) -> EndpointError:
    return EndpointError(f"{endpoint} does not answer like an S3 endpoint")


def head_refused_but_listing_works(bucket: str, code: str) -> BucketError:
    return BucketError(f"cannot use bucket {bucket!r}: HEAD answered {code} but listing works")


def checked_part(number: int, etag: str | None, returned: str | None, checksum: Checksum | None) -> UploadedPart:
    """A part the store took, once its answer is checked: the checksum the store computed (if it says) must be
    the one sent, and an ETag is needed to complete the upload."""
    verify_stored_checksum(returned, checksum, what=f"part {number}: ")
    if not etag:
        raise StoreError(f"UploadPart {number}: the store's answer has no ETag", retryable=True)
    return UploadedPart(number=number, etag=etag, checksum=checksum)


RETRYABLE_DELETE_CODES: Final = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"})
"""A key's error in a DeleteObjects answer that another try may clear."""


def delete_failure(key: str, code: str, message: str | None) -> DeleteFailure:
    """A key a DeleteObjects answer lists as not deleted, from its error's code and message."""
    return DeleteFailure(key, detail(code, message), retryable=code in RETRYABLE_DELETE_CODES)
