"""What every provider does with a failure: scrub secrets from its message, and turn an error answer into the
uploader's error.

A store answers a failed request with an HTTP status and, where it sends an error document, a code. The flags the
engine acts on (``retryable``, ``throttled``, ``denied`` of ``StoreError``) follow from them the same way for every
cloud; only the codes' names differ, and each provider names its own in an ``ErrorCodes``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Final

from ..errors import FileError, StoreError, UploaderError, VerificationError

THROTTLE_STATUSES: Final = frozenset({429, 503})
# Shorter values (a placeholder, an empty token) would scrub ordinary words out of every message.
MIN_SECRET_CHARS: Final = 8
_URL_USERINFO: Final = re.compile(r"(\w+://)[^/@\s]+@")
_SAS_SIGNATURE: Final = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` (or any text) with the user info of its URLs, passwords included, replaced by ``***``."""
    return _URL_USERINFO.sub(r"\1***@", url)


class Redactor:
    """Scrubs one connection's secrets from a message: its credentials' secret key and token (or account key and
    SAS), and, whatever the connection, passwords in URLs and SAS signatures (``sig=``)."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)

    def with_keys(self, *keys: bytes) -> Redactor:
        """This redactor, also scrubbing ``keys`` (an SSE-C key, raw bytes) in every form a message could carry
        them: their base64 (as sent), and the raw bytes read as text (a key file may hold a printable key)."""
        import base64  # only for a run that has such a key

        forms = []
        for key in keys:
            forms += [base64.b64encode(key).decode(), key.decode("latin-1")]
            with suppress(UnicodeDecodeError):
                forms.append(key.decode())
        return Redactor((*self._secrets, *forms))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SAS_SIGNATURE.sub(r"\1***", redact_url(text))

    @contextmanager
    def scrubbing(self) -> Iterator[None]:
        """Scrub the message of an ``UploaderError`` raised inside, which then goes on its way."""
        try:
            yield
        except UploaderError as error:
            error.args = (self(str(error)),)
            raise


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """A store's names for the error answers that mean more than their HTTP status."""

    verification: frozenset[str]
    """The store refused the body's checksum: damaged on the way, it may arrive whole when sent again."""
    checksum_name: str = "checksum"
    """What the store checks a body with, as a user would name it in a message."""
    credentials: frozenset[str] = frozenset()
    """The credentials were rejected (see ``credentials_rejected``)."""
    throttle: frozenset[str] = frozenset()
    """Slow down: besides 429 and 503."""
    transient: frozenset[str] = frozenset()
    """Worth another try, whatever the status."""
    retryable_statuses: frozenset[int] = frozenset()
    """Worth another try: besides every 5xx."""
    denied: frozenset[str] = frozenset()
    """These credentials may not do this (a publish-only role may not list or read)."""
    denied_statuses: frozenset[int] = frozenset()


def credentials_rejected(operation: str, detail: str) -> StoreError:
    """The credentials were rejected mid-run. The preflight proved them good, so this is most likely a rotation
    racing a request signed just before it: a retry signs again with the refreshed credentials."""
    return StoreError(f"{operation}: credentials rejected ({detail})", retryable=True)


def answer_error(operation: str, status: int, code: str, detail: str, codes: ErrorCodes) -> FileError:
    """The error for a store's error answer to one object's request: its ``status``, the ``code`` of its error
    document (``""`` without one), and ``detail``, what the answer said, for the message."""
    if code in codes.verification:
        return VerificationError(f"{operation}: the store refused the body's {codes.checksum_name} ({code})")
    if code in codes.credentials:
        return credentials_rejected(operation, detail)
    throttled = code in codes.throttle or status in THROTTLE_STATUSES
    retryable = code in codes.transient or status >= 500 or status in codes.retryable_statuses
    denied = code in codes.denied or status in codes.denied_statuses
    return StoreError(f"{operation} failed: {detail}", retryable=retryable, throttled=throttled, denied=denied)


def request_failed(operation: str, detail: str, *, retryable: bool) -> StoreError:
    """The error for a request without a usable answer: ``retryable`` for the network's failures (refused or reset
    connections, timeouts, a body cut short), not for an answer that makes no sense."""
    return StoreError(f"{operation} failed: {detail}", retryable=retryable)
