"""What every provider does with a failure: secrets never reach a message, and an answer's flags follow from its
status and code alike on S3 and Azure."""

from __future__ import annotations

import base64
import hashlib

import pytest

from async_uploader.errors import BucketError, StoreError, VerificationError
from async_uploader.providers._errors import ErrorCodes, Redactor, answer_error, redact_url
from async_uploader.providers.s3.answers import S3_CODES

AZURE_LIKE = ErrorCodes(
    verification=frozenset({"Md5Mismatch"}),
    checksum_name="MD5",
    throttle=frozenset({"ServerBusy"}),
    retryable_statuses=frozenset({408}),
)


def test_secrets_passwords_and_signatures_are_scrubbed() -> None:
    redact = Redactor(["wJalrXUtnFEMI/K7MDENG", "short", "", "FwoGZXIvYXdzEJr//////////"])
    text = (
        "SignatureDoesNotMatch for wJalrXUtnFEMI/K7MDENG with token FwoGZXIvYXdzEJr////////// at "
        "http://user:hunter22@minio:9000/b and https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2Bdef&se=1"
    )
    scrubbed = redact(text)
    for secret in ("wJalrXUtnFEMI/K7MDENG", "FwoGZXIvYXdzEJr", "hunter22", "abc%2Bdef"):
        assert secret not in scrubbed
    assert "http://***@minio:9000/b" in scrubbed
    assert "sig=***&se=1" in scrubbed
    assert redact("a short word") == "a short word"  # too short to scrub: it would scrub ordinary words
    assert redact_url("https://u:p@h/x") == "https://***@h/x"


def test_scrubbing_rewrites_the_message_of_an_error_on_its_way_out() -> None:
    redact = Redactor(["a-secret-value"])
    with pytest.raises(BucketError, match=r"^cannot write with \*\*\*$"), redact.scrubbing():
        raise BucketError("cannot write with a-secret-value")


def test_an_sse_c_key_is_scrubbed_raw_and_in_base64_but_not_its_md5() -> None:
    key = b"a printable key of thirty-two ch"  # a key file may hold text: its raw form can be echoed too
    encoded = base64.b64encode(key).decode()
    digest = base64.b64encode(hashlib.md5(key).digest()).decode()  # not a secret: S3 answers it back
    redact = Redactor(["a-secret-value"]).with_keys(key, bytes(range(32)))
    scrubbed = redact(f"bad key {encoded} ({key.decode()}) md5 {digest}, a-secret-value, {bytes(range(32))!r}")
    assert encoded not in scrubbed
    assert key.decode() not in scrubbed
    assert "a-secret-value" not in scrubbed
    assert digest in scrubbed
    assert base64.b64encode(bytes(range(32))).decode() not in redact(base64.b64encode(bytes(range(32))).decode())


@pytest.mark.parametrize(
    ("status", "code", "codes", "flags"),
    [
        (503, "SlowDown", S3_CODES, (True, True, False)),
        (400, "Throttling", S3_CODES, (True, True, False)),
        (500, "InternalError", S3_CODES, (True, False, False)),
        (400, "RequestTimeout", S3_CODES, (True, False, False)),
        (403, "AccessDenied", S3_CODES, (False, False, True)),
        (404, "NoSuchKey", S3_CODES, (False, False, False)),
        (503, "ServerBusy", AZURE_LIKE, (True, True, False)),
        (408, "", AZURE_LIKE, (True, False, False)),
        (403, "AuthorizationFailure", AZURE_LIKE, (False, False, False)),
    ],
)
def test_an_answers_flags_follow_from_its_status_and_code(
    status: int, code: str, codes: ErrorCodes, flags: tuple[bool, bool, bool]
) -> None:
    error = answer_error("PutObject", status, code, f"{code}: why", codes)
    assert isinstance(error, StoreError)
    assert (error.retryable, error.throttled, error.denied) == flags
    assert str(error) == f"PutObject failed: {code}: why"


def test_a_refused_checksum_and_rejected_credentials_are_worth_another_try() -> None:
    refused = answer_error("UploadPart 3", 400, "BadDigest", "BadDigest: no", S3_CODES)
    assert isinstance(refused, VerificationError)
    assert str(refused) == "UploadPart 3: the store refused the body's checksum (BadDigest)"
    azure = answer_error("PutBlock 3", 400, "Md5Mismatch", "Md5Mismatch: no", AZURE_LIKE)
    assert str(azure) == "PutBlock 3: the store refused the body's MD5 (Md5Mismatch)"
    rejected = answer_error("PutObject", 403, "SignatureDoesNotMatch", "SignatureDoesNotMatch: x", S3_CODES)
    assert isinstance(rejected, StoreError)
    assert rejected.retryable
    assert str(rejected) == "PutObject: credentials rejected (SignatureDoesNotMatch: x)"
