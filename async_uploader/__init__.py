"""async-uploader: upload a directory tree to private S3-compatible object storage, fast, in flat memory."""

from . import errors, events
from .api import run, upload
from .config import UploadConfig, make_config
from .events import UploadResult

__all__ = ["UploadConfig", "UploadResult", "errors", "events", "make_config", "run", "upload"]
__version__ = "0.1.0"
