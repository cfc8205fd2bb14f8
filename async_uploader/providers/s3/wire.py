"""S3's REST wire format, as botocore reads and writes it: addressing, headers, XML documents, error documents.

Pure: no I/O. Every function here matches what botocore does for the same request or answer (the tests compare
the two), so that the direct path and the aiobotocore path store and read the same things.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

from ...source.checksum import Algorithm, Checksum
from ..base import NO_HEADERS, ObjectHeaders, StoredPart
from .sigv4 import host_header, quote_key

PROBE_KEY: Final = "async-uploader-probe"
META: Final = "x-amz-meta-"
S3_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"

CHECKSUM_PARAMS: Final = {
    Algorithm.CRC32: "ChecksumCRC32",
    Algorithm.CRC32C: "ChecksumCRC32C",
    Algorithm.SHA256: "ChecksumSHA256",
}
"""botocore's parameter (and S3's XML element) for a checksum of each algorithm."""
CREATE_HEADERS: Final = {"ChecksumAlgorithm": "x-amz-checksum-algorithm", "ChecksumType": "x-amz-checksum-type"}
"""The request headers of CreateMultipartUpload's checksum parameters."""


REDIRECT_STATUSES: Final = frozenset({301, 302, 307})
REDIRECT_CODES: Final = frozenset({"PermanentRedirect", "IllegalLocationConstraintException"})


OBJECT_PARAMS: Final = {
    "content_type": ("ContentType", "content-type"),
    "cache_control": ("CacheControl", "cache-control"),
    "content_encoding": ("ContentEncoding", "content-encoding"),
    "content_disposition": ("ContentDisposition", "content-disposition"),
    "content_language": ("ContentLanguage", "content-language"),
    "expires": ("Expires", "expires"),
    "sse": ("ServerSideEncryption", "x-amz-server-side-encryption"),
    "sse_kms_key_id": ("SSEKMSKeyId", "x-amz-server-side-encryption-aws-kms-key-id"),
    "sse_kms_context": ("SSEKMSEncryptionContext", "x-amz-server-side-encryption-context"),
    "storage_class": ("StorageClass", "x-amz-storage-class"),
    "tagging": ("Tagging", "x-amz-tagging"),
    "acl": ("ACL", "x-amz-acl"),
}
"""``ObjectHeaders`` fields as botocore's PutObject/CreateMultipartUpload parameters and their request headers."""
S3_HEADER_FIELDS: Final = frozenset({*OBJECT_PARAMS, "sse_c_key"})
"""What an S3 store honours of ``ObjectHeaders``."""
SSE_C_ALGORITHM: Final = "AES256"
MAX_CACHED_HEADERS: Final = 512
_NOTHING: Final[Mapping[str, Any]] = {}
_cached: dict[tuple[int, int], tuple[ObjectHeaders, Mapping[str, Any]]] = {}


def _by_identity(kind: int, headers: ObjectHeaders, make: Callable[[ObjectHeaders], Mapping[str, Any]]) -> Any:
    """``make(headers)``, cached by the instance's identity: the engine passes one instance per extension and set
    of matching rules, and hashing a 15-field dataclass would cost more than the rest of this lookup. The entry
    holds the instance, so its id cannot be reused while it is cached."""
    found = _cached.get((kind, id(headers)))
    if found is not None and found[0] is headers:
        return found[1]
    made = make(headers)
    if len(_cached) >= MAX_CACHED_HEADERS:
        _cached.clear()
    _cached[(kind, id(headers))] = (headers, made)
    return made


def object_params(headers: ObjectHeaders) -> Mapping[str, Any]:
    """botocore's parameters for ``headers`` on PutObject and CreateMultipartUpload."""
    return _by_identity(0, headers, _object_params) if headers is not NO_HEADERS else _NOTHING


def _object_params(headers: ObjectHeaders) -> Mapping[str, Any]:
    params: dict[str, Any] = {
        param: getattr(headers, name) for name, (param, _) in OBJECT_PARAMS.items() if getattr(headers, name)
    }
    params.update(request_params(headers))
    return params


def request_params(headers: ObjectHeaders) -> Mapping[str, Any]:
    """botocore's parameters for ``headers`` on the object's other requests: UploadPart, CompleteMultipartUpload,
    HeadObject, ListParts (the SSE-C key). Given encoded, with its MD5: botocore encodes and digests a raw key only
    for some operations (not ListParts or CompleteMultipartUpload), and leaves a key with its MD5 as it is."""
    return _by_identity(1, headers, _request_params) if headers is not NO_HEADERS else _NOTHING


def _request_params(headers: ObjectHeaders) -> Mapping[str, Any]:
    wire = request_headers(headers)
    if not wire:
        return {}
    return {
        "SSECustomerAlgorithm": SSE_C_ALGORITHM,
        "SSECustomerKey": wire["x-amz-server-side-encryption-customer-key"],
        "SSECustomerKeyMD5": wire["x-amz-server-side-encryption-customer-key-md5"],
    }


def object_headers(headers: ObjectHeaders) -> Mapping[str, str]:
    """The request headers botocore sends for ``object_params(headers)``."""
    return _by_identity(2, headers, _object_headers) if headers is not NO_HEADERS else _NOTHING


def _object_headers(headers: ObjectHeaders) -> Mapping[str, str]:
    wire = {header: getattr(headers, name) for name, (_, header) in OBJECT_PARAMS.items() if getattr(headers, name)}
    wire.update(request_headers(headers))
    return wire


def request_headers(headers: ObjectHeaders) -> Mapping[str, str]:
    """The request headers botocore sends for ``request_params(headers)``: the key in base64 and its MD5."""
    return _by_identity(3, headers, _request_headers) if headers is not NO_HEADERS else _NOTHING


def _request_headers(headers: ObjectHeaders) -> Mapping[str, str]:
    key = headers.sse_c_key
    if key is None:
        return {}
    return {
        "x-amz-server-side-encryption-customer-algorithm": SSE_C_ALGORITHM,
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }


class ErrorResponse(Exception):
    """The store answered with an error status; ``code`` and ``message`` from its XML error document.

    ``region``: where the answer says the bucket is (``x-amz-bucket-region``, or the document's ``Region``).
    """

    def __init__(self, status: int, code: str, message: str | None, region: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message
        self.region = region


def error_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> ErrorResponse:
    """The error document's Code and Message; without one, the status (as botocore reports it). An answer that
    says the bucket is in another region says which in its message, so a user can set it."""
    code, message, region = str(status), None, (headers or {}).get("x-amz-bucket-region")
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message")
        region = region or root.findtext("Region")
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = None
    if region and (status in REDIRECT_STATUSES or code in REDIRECT_CODES or code == "AuthorizationHeaderMalformed"):
        message = f"{message or code}; the bucket is in region {region!r}"
    return ErrorResponse(status, code, message, region or None)


def redirect_region(method: str, error: ErrorResponse, signed_for: str) -> str | None:
    """The region to sign for again, when ``error`` answers a request signed for ``signed_for`` in the wrong
    region; ``None`` for any other error. botocore's ``S3RegionRedirectorv2``: a redirect status or
    ``PermanentRedirect``, ``AuthorizationHeaderMalformed`` naming the region, or (a HEAD has no body to say
    more) a HEAD answered 301 or 400 with ``x-amz-bucket-region``."""
    region = error.region
    if not region or region == signed_for:
        return None
    if (
        error.status in REDIRECT_STATUSES
        or error.code in REDIRECT_CODES
        or error.code == "AuthorizationHeaderMalformed"
        or (method == "HEAD" and error.status in (301, 400))
    ):
        return region
    return None


@dataclass(frozen=True, slots=True)
class BucketEndpoint:
    """Where a bucket's objects are: ``{origin}{bucket_path}{quoted key}``, signed for ``region``.

    Learned from a request botocore signed, it follows botocore's endpoint rules (path style for custom endpoints,
    virtual-hosted buckets on AWS, FIPS and dual-stack settings) without reimplementing them. (A presigned URL
    would not do: botocore presigns with SigV2 in us-east-1 and with the global endpoint elsewhere.)
    """

    origin: str
    host: str
    bucket_path: str
    region: str

    @classmethod
    def from_signed_request(cls, url: str, authorization: str, probe_key: str = PROBE_KEY) -> BucketEndpoint | None:
        """The endpoint of a request botocore signed (SigV4, header-signed) for ``probe_key``; ``None`` if it
        is not one the direct path can follow."""
        parts = urlsplit(url)
        quoted = quote_key(probe_key)
        algorithm, _, fields = authorization.partition(" ")
        credential = fields.partition("Credential=")[2].partition(",")[0].split("/")
        if (
            algorithm != "AWS4-HMAC-SHA256"
            or not parts.path.endswith(f"/{quoted}")
            or len(credential) != 5
            or credential[3] != "s3"
        ):
            return None
        return cls(
            origin=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            host=host_header(parts),
            bucket_path=parts.path[: -len(quoted)],
            region=credential[2],
        )

    @classmethod
    def from_bucket_request(cls, url: str, authorization: str, bucket: str) -> BucketEndpoint | None:
        """The endpoint of a bucket-level request botocore signed (the preflight's ``HeadBucket``): a path of
        ``/bucket`` is path style, ``/`` a virtual-hosted bucket. Learning it there costs no request."""
        path = urlsplit(url).path.rstrip("/")
        if path != "" and not path.endswith(f"/{quote_key(bucket)}"):
            return None
        as_object = f"{url.partition('?')[0].rstrip('/')}/{quote_key(PROBE_KEY)}"
        return cls.from_signed_request(as_object, authorization)

    def in_region(self, region: str) -> BucketEndpoint:
        """This bucket's endpoint signed for ``region``, as botocore's redirect resolves it again: AWS's own
        endpoints name their region in the host (``s3.{region}.amazonaws.com``, the global ``s3.amazonaws.com``
        becoming regional); a user-given endpoint stays where it is, only the signing region changes."""
        host, origin = self.host, self.origin
        hostname = host.rpartition(":")[0] if host.count(":") == 1 else host
        if hostname.endswith((".amazonaws.com", ".amazonaws.com.cn")):
            labels = hostname.split(".")
            if self.region in labels:  # the last such label: a bucket may be named like a region
                labels[len(labels) - 1 - labels[::-1].index(self.region)] = region
            elif "s3" in labels:
                labels.insert(labels.index("s3") + 1, region)
            elif "s3-external-1" in labels:
                labels[labels.index("s3-external-1")] = f"s3.{region}"
            new_hostname = ".".join(labels)
            host, origin = host.replace(hostname, new_hostname), origin.replace(hostname, new_hostname)
        return BucketEndpoint(origin=origin, host=host, bucket_path=self.bucket_path, region=region)

    @classmethod
    def path_style(cls, endpoint_url: str, bucket: str, region: str) -> BucketEndpoint:
        """A bucket of a user-given endpoint, addressed as botocore does with ``addressing_style: path``:
        ``{scheme}://{host}{endpoint path}/{bucket}/{key}``, any user info left out."""
        parts = urlsplit(endpoint_url)
        return cls(
            origin=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            host=host_header(parts),
            bucket_path=f"{parts.path.rstrip('/')}/{quote_key(bucket)}/",
            region=region,
        )


def metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as the ``x-amz-meta-*`` headers botocore would send (names lower-cased, as S3 keeps them)."""
    return {f"{META}{name.lower()}": value for name, value in (metadata or {}).items()}


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """The user metadata of an answer's (lower-case) headers, by name without ``x-amz-meta-``, as botocore gives
    it."""
    return {name[len(META) :]: value for name, value in headers.items() if name.startswith(META)}


CHECKSUM_MODE_HEADERS: Final = {"x-amz-checksum-mode": "ENABLED"}
"""HeadObject's ``ChecksumMode="ENABLED"`` on the wire: the answer then carries the object's stored checksum."""


def whole_checksum(fields: Mapping[str, str], *, names: Mapping[Algorithm, str], type_name: str) -> Checksum | None:
    """The whole-object checksum among a HEAD answer's ``fields`` (botocore's by ``ChecksumCRC32``..., or the
    headers by ``x-amz-checksum-crc32``...), ``None`` if there is none or only a composite one (of the parts)."""
    if fields.get(type_name, "FULL_OBJECT").upper() != "FULL_OBJECT":
        return None
    for algorithm, name in names.items():
        value = fields.get(name)
        if value and "-" not in value:
            return Checksum(algorithm, value)
    return None


CHECKSUM_FIELDS: Final = {algorithm: f"Checksum{algorithm.name}" for algorithm in Algorithm}
CHECKSUM_HEADERS: Final = {algorithm: f"x-amz-checksum-{algorithm.value}" for algorithm in Algorithm}


def create_params(checksum: Algorithm | None, full_object: bool) -> dict[str, str]:
    """CreateMultipartUpload's checksum parameters, by botocore's names (``CREATE_HEADERS`` on the wire): parts
    carry ``checksum`` checksums and, with ``full_object``, the completion the whole object's CRC."""
    if checksum is None:
        return {}
    return {"ChecksumAlgorithm": checksum.name, **({"ChecksumType": "FULL_OBJECT"} if full_object else {})}


def checksum_element(checksum: Checksum | None) -> tuple[str | None, str | None]:
    """A part's checksum as the element and value of a CompleteMultipartUpload document row."""
    return (CHECKSUM_PARAMS[checksum.algorithm], checksum.value) if checksum is not None else (None, None)


def checksum_param(checksum: Checksum | None) -> dict[str, str]:
    """A checksum as botocore's request parameter."""
    return {CHECKSUM_PARAMS[checksum.algorithm]: checksum.value} if checksum is not None else {}


def returned_checksum(answer: Mapping[str, Any], sent: Checksum | None) -> str | None:
    """The store's checksum, in the algorithm of the one sent, if its answer (fields by name) has one."""
    return answer.get(CHECKSUM_PARAMS[sent.algorithm]) if sent is not None else None


def stored_part(item: Mapping[str, Any]) -> StoredPart:
    """A part as ListParts lists it (botocore's page or ``parse_parts``'s fields, named alike)."""
    params = CHECKSUM_PARAMS
    listed = next((Checksum(a, str(item[params[a]])) for a in Algorithm if item.get(params[a])), None)
    return StoredPart(int(item["PartNumber"]), int(item["Size"]), str(item["ETag"]), listed)


def _escape_text(text: str) -> str:
    """XML character data as ElementTree (botocore's serializer) writes it; ``xml.sax.saxutils.escape`` would do
    the same but imports ``urllib.request`` and ``http.client`` (~10 ms of every run's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def complete_body(parts: Sequence[tuple[int, str, str | None, str | None]]) -> bytes:
    """The CompleteMultipartUpload document for ``(number, etag, checksum element, checksum value)`` rows,
    byte for byte as botocore serializes the aiobotocore path's (``ChecksumCRC32``...; none for ``None``)."""
    rows = []
    for number, etag, element, value in parts:
        checksum = f"<{element}>{_escape_text(value)}</{element}>" if element is not None and value is not None else ""
        rows.append(f"<Part><PartNumber>{number}</PartNumber><ETag>{_escape_text(etag)}</ETag>{checksum}</Part>")
    return f'<CompleteMultipartUpload xmlns="{S3_XMLNS}">{"".join(rows)}</CompleteMultipartUpload>'.encode()


def delete_body(keys: Sequence[str]) -> bytes:
    """The DeleteObjects document for ``keys``, quiet (the answer lists only the keys that failed), as botocore
    serializes it: its XML, then ``\r`` and ``\n`` as character references (``handlers.escape_xml_payload``)."""
    rows = "".join(f"<Object><Key>{_escape_text(key)}</Key></Object>" for key in keys)
    body = f'<Delete xmlns="{S3_XMLNS}">{rows}<Quiet>true</Quiet></Delete>'.encode()
    return body.replace(b"\r", b"&#xD;").replace(b"\n", b"&#xA;")


def parse_delete_errors(body: bytes) -> list[tuple[str, str, str]]:
    """A DeleteObjects answer's ``(key, code, message)`` for each key not deleted. An error document in a 200
    answer is an ``ErrorResponse`` with status 500, as for a completion."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    if root.tag == f"{ns}Error":
        raise error_response(HTTPStatus.INTERNAL_SERVER_ERROR, body)
    return [
        (item.findtext(f"{ns}Key") or "", item.findtext(f"{ns}Code") or "", item.findtext(f"{ns}Message") or "")
        for item in root.iter(f"{ns}Error")
    ]


def _url_decoder(root: ElementTree.Element, ns: str) -> Callable[[str], str]:
    """Keys are URL-encoded only where the answer says so (``EncodingType``), as botocore decodes them: a store
    that ignores ``encoding-type=url`` sends them as they are, ``+`` and ``%`` included."""
    return unquote_plus if (root.findtext(f"{ns}EncodingType") or "").strip().lower() == "url" else str


def _fields(element: ElementTree.Element, ns: str) -> dict[str, str]:
    """An element's children's texts by local name, as botocore's parser names a shape's members."""
    return {child.tag[len(ns) :]: child.text or "" for child in element}


def _namespace(root: ElementTree.Element) -> str:
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def parse_upload_id(body: bytes) -> str:
    """A CreateMultipartUpload answer's upload id; ``ValueError`` if it has none."""
    root = ElementTree.fromstring(body)
    upload_id = root.findtext(f"{_namespace(root)}UploadId")
    if not upload_id:
        raise ValueError("CreateMultipartUpload answered without an UploadId")
    return upload_id


def parse_completion(body: bytes) -> dict[str, str]:
    """A CompleteMultipartUpload answer's fields by name (``ETag``, ``ChecksumCRC32``...). An error document in
    a 200 answer (S3 sends one when it fails after answering has begun) is an ``ErrorResponse`` with status 500,
    as botocore treats it: worth another try."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    if root.tag == f"{ns}Error":
        raise error_response(HTTPStatus.INTERNAL_SERVER_ERROR, body)
    return _fields(root, ns)


def parse_uploads(body: bytes) -> tuple[list[tuple[str, str, float]], tuple[str, str] | None]:
    """A ListMultipartUploads answer: its uploads, and the next page's key and upload id markers if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    decode = _url_decoder(root, ns)
    rows = []
    for item in root.iterfind(f"{ns}Upload"):
        initiated = item.findtext(f"{ns}Initiated")
        stamp = datetime.fromisoformat(initiated).timestamp() if initiated else 0.0
        rows.append((decode(item.findtext(f"{ns}Key") or ""), item.findtext(f"{ns}UploadId") or "", stamp))
    if (root.findtext(f"{ns}IsTruncated") or "").strip().lower() != "true":
        return rows, None
    key_marker = decode(root.findtext(f"{ns}NextKeyMarker") or "")
    upload_marker = root.findtext(f"{ns}NextUploadIdMarker") or ""
    if not key_marker and not rows:
        return rows, None  # truncated, yet nothing to go on from: stop rather than ask for the same page forever
    return rows, (key_marker or rows[-1][0], upload_marker or rows[-1][1])


def parse_parts(body: bytes) -> tuple[list[dict[str, str]], int | None]:
    """A ListParts answer: its parts' fields, and the next page's part number marker if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    parts = [_fields(item, ns) for item in root.iterfind(f"{ns}Part")]
    if (root.findtext(f"{ns}IsTruncated") or "").strip().lower() != "true" or not parts:
        return parts, None  # truncated with no parts: nothing to go on from, so stop rather than loop
    marker = (root.findtext(f"{ns}NextPartNumberMarker") or "").strip() or parts[-1].get("PartNumber", "")
    return parts, int(marker) if marker.isdigit() else None


def parse_listing(body: bytes) -> tuple[list[tuple[str, int, str]], str | None]:
    """A ListObjectsV2 answer (``encoding-type=url``): its objects and the continuation token, if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    decode = _url_decoder(root, ns)
    rows = [
        (
            decode(item.findtext(f"{ns}Key") or ""),
            int(item.findtext(f"{ns}Size") or 0),
            item.findtext(f"{ns}ETag") or "",
        )
        for item in root.iterfind(f"{ns}Contents")
    ]
    truncated = (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true"
    return rows, (root.findtext(f"{ns}NextContinuationToken") if truncated else None)
