"""async-uploader: upload a directory tree to private S3-compatible object storage, fast, in flat memory.

``await upload(...)`` for one run (of a tree or a file; ``upload_stream`` for a stream), ``Uploader`` to reuse a
connection pool, ``upload_distributed`` for one run spread over a Dask cluster, ``async_uploader.events`` for
typed progress, ``async_uploader.errors`` for the exceptions.
"""

from . import errors, events
from .api import Uploader, cleanup, run, run_config, upload, upload_distributed, upload_stream
from .config import UploadConfig
from .events import Event, UploadResult
from .options import make_config

__all__ = [
    "Event",
    "UploadConfig",
    "UploadResult",
    "Uploader",
    "cleanup",
    "errors",
    "events",
    "make_config",
    "run",
    "run_config",
    "upload",
    "upload_distributed",
    "upload_stream",
]
__version__ = "0.1.0"
