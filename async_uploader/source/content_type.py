"""A file's Content-Type, from its name's extension, by a table this package holds.

Every peer guesses by extension (``aws s3 cp``, s5cmd, rclone), and each has broken sites when the table came from
the machine: the Windows registry made ``.js`` ``text/plain`` for aws-cli (aws-cli#3367), and Python's
``mimetypes`` reads ``/etc/mime.types`` and the registry on ``init()``. So the table is a literal here, never
``mimetypes``: the same guess on Linux, macOS and Windows, and on every Python version (the stdlib's own built-in
table changes between them: 3.11 calls ``.js`` ``application/javascript`` and knows no ``.webp``). It starts from
the stdlib's built-in table and corrects it for the web as browsers and RFC 9239 now want it. No charset is added
to text types, as aws-cli adds none: a rule (``--header-rule '*.html:Content-Type: text/html; charset=utf-8'``)
adds one where wanted.
"""

from __future__ import annotations

from typing import Final

OCTET_STREAM: Final = "application/octet-stream"
"""What S3 and browsers assume of bytes nobody typed: the type of any extension the table does not know."""

# fmt: off
TYPES_BY_EXTENSION: Final[dict[str, str]] = {
    # The web: documents, scripts, styles, data.
    "html": "text/html", "htm": "text/html", "xhtml": "application/xhtml+xml", "shtml": "text/html",
    "css": "text/css", "js": "text/javascript", "mjs": "text/javascript", "cjs": "text/javascript",
    "map": "application/json", "json": "application/json", "jsonld": "application/ld+json",
    "webmanifest": "application/manifest+json", "wasm": "application/wasm", "xml": "application/xml",
    "xsl": "application/xml", "xsd": "application/xml", "rss": "application/rss+xml", "atom": "application/atom+xml",
    "txt": "text/plain", "text": "text/plain", "md": "text/markdown", "markdown": "text/markdown",
    "csv": "text/csv", "tsv": "text/tab-separated-values", "ics": "text/calendar", "vtt": "text/vtt",
    "srt": "text/plain", "yaml": "application/yaml", "yml": "application/yaml", "toml": "application/toml",
    "rtf": "application/rtf", "vcf": "text/vcard", "n3": "text/n3", "rdf": "application/rdf+xml",
    "ndjson": "application/x-ndjson", "jsonl": "application/jsonl", "geojson": "application/geo+json",
    "pdf": "application/pdf", "ps": "application/postscript", "eps": "application/postscript",
    "ai": "application/postscript", "tex": "application/x-tex", "latex": "application/x-latex",
    "eml": "message/rfc822", "mht": "message/rfc822", "mhtml": "message/rfc822",
    # Images.
    "png": "image/png", "apng": "image/apng", "gif": "image/gif", "jpg": "image/jpeg", "jpeg": "image/jpeg",
    "jpe": "image/jpeg", "jfif": "image/jpeg", "webp": "image/webp", "avif": "image/avif", "svg": "image/svg+xml",
    "svgz": "image/svg+xml", "ico": "image/vnd.microsoft.icon", "bmp": "image/bmp", "tif": "image/tiff",
    "tiff": "image/tiff", "heic": "image/heic", "heif": "image/heif", "jxl": "image/jxl",
    "psd": "image/vnd.adobe.photoshop",
    # Fonts.
    "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
    "eot": "application/vnd.ms-fontobject",
    # Audio and video.
    "mp3": "audio/mpeg", "mp2": "audio/mpeg", "aac": "audio/aac", "m4a": "audio/mp4", "oga": "audio/ogg",
    "ogg": "audio/ogg", "opus": "audio/opus", "wav": "audio/wav", "flac": "audio/flac", "mid": "audio/midi",
    "midi": "audio/midi", "weba": "audio/webm", "aif": "audio/x-aiff", "aiff": "audio/x-aiff", "au": "audio/basic",
    "mp4": "video/mp4", "m4v": "video/mp4", "mpg": "video/mpeg", "mpeg": "video/mpeg", "ogv": "video/ogg",
    "webm": "video/webm", "mov": "video/quicktime", "avi": "video/x-msvideo", "mkv": "video/x-matroska",
    "3gp": "video/3gpp", "3g2": "video/3gpp2", "ts": "video/mp2t", "m3u8": "application/vnd.apple.mpegurl",
    "m3u": "application/vnd.apple.mpegurl", "mpd": "application/dash+xml",
    # Archives and compressed files (the type of the file as it is: no Content-Encoding is implied).
    "zip": "application/zip", "gz": "application/gzip", "tgz": "application/gzip", "bz2": "application/x-bzip2",
    "xz": "application/x-xz", "zst": "application/zstd", "7z": "application/x-7z-compressed",
    "tar": "application/x-tar", "rar": "application/vnd.rar", "jar": "application/java-archive",
    "br": OCTET_STREAM,
    # Office documents.
    "doc": "application/msword", "dot": "application/msword", "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint", "pps": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation", "epub": "application/epub+zip",
    # Data and code.
    "parquet": "application/vnd.apache.parquet", "avro": "application/avro", "nc": "application/x-netcdf",
    "h5": "application/x-hdf5", "hdf": "application/x-hdf", "sqlite": "application/vnd.sqlite3",
    "py": "text/x-python", "sh": "application/x-sh", "c": "text/plain", "h": "text/plain",
    "bat": "text/plain", "pl": "text/plain", "ksh": "text/plain",
    "pem": "application/x-pem-file", "crt": "application/x-x509-ca-cert", "p12": "application/x-pkcs12",
    "pfx": "application/x-pkcs12",
    "bin": OCTET_STREAM, "exe": OCTET_STREAM, "dll": OCTET_STREAM, "so": OCTET_STREAM, "o": OCTET_STREAM,
    "a": OCTET_STREAM, "obj": OCTET_STREAM, "iso": OCTET_STREAM, "dmg": OCTET_STREAM,
}
# fmt: on


def extension(key: str) -> str:
    """The lower-cased extension of a key's last segment (``app.min.JS`` -> ``js``); empty for none, and for a
    dot file (``.bashrc``), whose dot starts a name rather than an extension."""
    stem, dot, ext = key.rpartition(".")
    if not dot or "/" in ext or not stem or stem.endswith("/"):
        return ""
    return ext.lower()


def guess_content_type(key: str) -> str:
    """The Content-Type of a key by its extension; ``application/octet-stream`` when the table does not know it."""
    return TYPES_BY_EXTENSION.get(extension(key), OCTET_STREAM)
