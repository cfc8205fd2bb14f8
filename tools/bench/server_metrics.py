"""Requests and bytes a run sent to one bucket, counted by the server itself from its Prometheus metrics.

Why the server's counters and not a counting front between tool and server: a front in Python would sit on
the path of every request and burn the same two cores as the client and the server, slowing the peers that
send tens of thousands of PUTs more than a tool that sends a hundred; weed counts at no visible cost. What
weed's counters can tell apart (checked against SeaweedFS 4.48):

- ``SeaweedFS_s3_request_total{bucket,code,type}``: ``type`` is a request class, not an operation. ``PUT``
  holds PutObject and UploadPart (and CreateBucket, made before a run's window); ``POST`` holds
  CreateMultipartUpload and CompleteMultipartUpload; ``LIST`` the object listings; ``DELETE`` DeleteObject and
  DeleteObjects; ``GET`` every other read: GetObject, HeadObject, HeadBucket, ListMultipartUploads.
- ``SeaweedFS_s3_time_to_first_byte_millisecond_count{bucket,type="GET"}`` counts only GetObject answers that
  sent a body: so ``GET`` minus it is the reads that fetched no object (HEADs of objects and of the bucket,
  ListMultipartUploads), reported as ``HEAD+``.
- ``SeaweedFS_s3_bucket_traffic_received_bytes_total{bucket}``: request bodies received, i.e. bytes uploaded.
- ``SeaweedFS_s3_uploaded_objects{bucket}``: objects written (a PutObject or a completed multipart upload).
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field

REQUEST_CLASSES = ("PUT", "POST", "GET", "HEAD+", "LIST", "DELETE")
"""The columns of the request counts, in table order (``GET`` here is GetObject with a body)."""
_REQUESTS = "SeaweedFS_s3_request_total"
_DOWNLOADS = "SeaweedFS_s3_time_to_first_byte_millisecond_count"
_RECEIVED = "SeaweedFS_s3_bucket_traffic_received_bytes_total"
_UPLOADED = "SeaweedFS_s3_uploaded_objects"
_SCRAPE_TIMEOUT_S = 10.0
_SETTLE_INTERVAL_S = 0.1
_SETTLE_TIMEOUT_S = 5.0
# Talk to loopback directly even when the environment sets HTTP(S)_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class BucketCounters:
    """One bucket's counters at one moment, or the difference between two moments."""

    requests: dict[str, int] = field(default_factory=dict)
    """Requests by class (see ``REQUEST_CLASSES``)."""
    errors: int = 0
    """Requests answered with a status of 400 or more, of any class."""
    bytes_received: int = 0
    objects_written: int = 0

    def minus(self, before: BucketCounters) -> BucketCounters:
        """What happened between ``before`` and this reading."""
        classes = set(self.requests) | set(before.requests)
        return BucketCounters(
            {name: self.requests.get(name, 0) - before.requests.get(name, 0) for name in sorted(classes)},
            self.errors - before.errors,
            self.bytes_received - before.bytes_received,
            self.objects_written - before.objects_written,
        )

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def _parse_line(line: str) -> tuple[str, dict[str, str], float] | None:
    """``name{a="x",b="y"} 12`` -> (name, labels, value); None for comments, blanks and lines of other shapes."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if "{" in line:
        name, _, rest = line.partition("{")
        body, _, value_text = rest.rpartition("}")
        labels: dict[str, str] = {}
        for pair in body.split('",'):
            key, sep, value = pair.partition('="')
            if sep:
                labels[key.strip().lstrip(",")] = value.rstrip('"')
    else:
        name, _, value_text = line.partition(" ")
        labels = {}
    try:
        number = float(value_text.split()[0])
    except (ValueError, IndexError):
        return None
    return name.strip(), labels, number


def parse_bucket_counters(text: str, bucket: str) -> BucketCounters:
    """Read ``bucket``'s counters out of a Prometheus text exposition (weed's ``/metrics`` page)."""
    by_type: dict[str, int] = {}
    errors = downloads = received = uploaded = 0
    for line in text.splitlines():
        parsed = _parse_line(line)
        if parsed is None:
            continue
        name, labels, value = parsed
        if labels.get("bucket") != bucket:
            continue
        if name == _REQUESTS:
            kind = labels.get("type", "?")
            by_type[kind] = by_type.get(kind, 0) + int(value)
            if labels.get("code", "").isdigit() and int(labels["code"]) >= 400:
                errors += int(value)
        elif name == _DOWNLOADS and labels.get("type") == "GET":
            downloads += int(value)
        elif name == _RECEIVED:
            received += int(value)
        elif name == _UPLOADED:
            uploaded += int(value)
    requests = {name: by_type.pop(name, 0) for name in ("PUT", "POST", "LIST", "DELETE")}
    reads = by_type.pop("GET", 0)
    requests["GET"] = downloads
    requests["HEAD+"] = reads - downloads
    requests.update(by_type)  # a class this list does not know yet still shows
    return BucketCounters(requests, errors, received, uploaded)


def scrape(metrics_url: str) -> str:
    with _OPENER.open(metrics_url, timeout=_SCRAPE_TIMEOUT_S) as response:
        return response.read().decode(errors="replace")  # type: ignore[no-any-return]


def read_bucket(metrics_url: str, bucket: str) -> BucketCounters:
    """The bucket's counters once they stop moving: weed counts a request as its handler returns, which can be
    a moment after the client has its answer and exited."""
    deadline = time.monotonic() + _SETTLE_TIMEOUT_S
    reading = parse_bucket_counters(scrape(metrics_url), bucket)
    while time.monotonic() < deadline:
        time.sleep(_SETTLE_INTERVAL_S)
        again = parse_bucket_counters(scrape(metrics_url), bucket)
        if again == reading:
            break
        reading = again
    return reading
