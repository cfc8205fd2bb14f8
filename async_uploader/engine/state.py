"""The local state file: what the last runs uploaded, so a re-run can skip unchanged files without a request each.

A listing tells a key's size and ETag but not its user metadata (the file's mtime), and a HEAD per object is what
makes other tools' re-runs slow and expensive. So each run remembers, per key, the size, mtime and ETag it
uploaded or verified; the next run trusts a remembered mtime only where the listing still shows the same size and
ETag (anything else, someone else's write included, means asking the store). It also remembers the multipart
uploads it has open, so a run killed mid-file can resume them: a store cannot tell an upload's metadata, and
reusing parts of an upload created for another version of the file would store the wrong metadata.

Everything lives in SQLite (stdlib): the listing of the destination goes into a temporary on-disk table rather
than a dict, so a million listed keys cost disk pages, not memory. Calls are quick point lookups and batched
writes, made on the event loop.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import ConfigError
from .plan import Listed, Remembered

COMMIT_EVERY_ROWS: Final = 2000
COMMIT_EVERY_S: Final = 2.0
LOOKUP_BATCH: Final = 500
"""Keys per query of ``lookup_many``: well under SQLite's limit of bound parameters."""
BUSY_TIMEOUT_S: Final = 10.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS objects (
    store TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, etag TEXT NOT NULL,
    checksum TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    store TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, part_size INTEGER NOT NULL, checksum TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (store, key, upload_id)
) WITHOUT ROWID;
"""


def normal_etag(etag: str) -> str:
    """ETags come quoted from some answers and not from others; compare them bare."""
    return etag.strip().strip('"')


def _add_checksum_column(db: sqlite3.Connection) -> None:
    """Migrate a state file written before ``objects.checksum`` (the whole-object checksum an upload sent, which
    ``--compare checksum`` reads): its rows get ``''``, known to hold none."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(objects)")}
    if "checksum" not in columns:
        db.execute("ALTER TABLE objects ADD COLUMN checksum TEXT NOT NULL DEFAULT ''")


@dataclass(frozen=True, slots=True)
class OpenUpload:
    """A multipart upload this machine created and has not seen completed or aborted."""

    upload_id: str
    size: int
    mtime_ns: int
    part_size: int
    checksum: str


class StateFile:
    """One run's view of the state file (or of a private temporary database with ``path=None``).

    ``store`` names the destination (endpoint and bucket), so one file serves every destination.
    """

    def __init__(self, path: Path | None, store: str) -> None:
        self._store = store
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            # "" is SQLite's private on-disk temporary database, deleted on close.
            self._db = sqlite3.connect(str(path) if path is not None else "", timeout=BUSY_TIMEOUT_S)
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            _add_checksum_column(self._db)
            self._db.execute(
                "CREATE TEMP TABLE listing (key TEXT PRIMARY KEY, size INTEGER NOT NULL, etag TEXT NOT NULL,"
                " md5 TEXT NOT NULL) WITHOUT ROWID"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot use the state file {str(path)!r}: {exc}") from exc
        self._remembered: list[tuple[str, str, int, int, str, str]] = []
        self._last_commit = time.monotonic()
        self.listed_rows = 0
        """Rows the listing table holds: none means every lookup would miss, so none is made."""
        self._seen_table = False

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._flush()
        self._db.close()

    def _flush(self) -> None:
        """Write what was remembered since the last flush, in one statement and one commit.

        Batched because every SQLite call releases and retakes the GIL, which the reading threads hold: with one
        statement per file, the loop would wait for the GIL on every file. A crash loses at most a few seconds of
        memory, which costs a HEAD each on the next run, nothing more.
        """
        if self._remembered:
            self._db.executemany(
                "INSERT OR REPLACE INTO objects (store, key, size, mtime_ns, etag, checksum) VALUES (?, ?, ?, ?, ?, ?)",
                self._remembered,
            )
            self._remembered.clear()
        self._db.commit()
        self._last_commit = time.monotonic()

    # The listing of the destination, for this run only.

    def add_listed(self, rows: Iterable[tuple[str, int, str, str]]) -> None:
        """``(key, size, etag, md5)`` rows of a listing page (``md5``: the content's MD5 in hex where the listing
        has it apart from the ETag, as Azure's does, else ``""``)."""
        rows = [(k, size, normal_etag(e), md5) for k, size, e, md5 in rows]
        self._db.executemany("INSERT OR REPLACE INTO listing VALUES (?, ?, ?, ?)", rows)
        self._db.commit()
        self.listed_rows += len(rows)

    def lookup(self, key: str) -> tuple[Listed | None, Remembered | None]:
        """What the listing shows for ``key`` and what earlier runs remember of it, in one query (none at all
        while the listing is empty: a first upload asks SQLite nothing)."""
        if not self.listed_rows:
            return None, None
        row = self._db.execute(
            "SELECT l.size, l.etag, l.md5, o.size, o.mtime_ns, o.etag, o.checksum FROM listing AS l"
            " LEFT JOIN objects AS o ON o.store = ? AND o.key = l.key WHERE l.key = ?",
            (self._store, key),
        ).fetchone()
        if row is None:
            return None, None
        remembered = Remembered(row[3], row[4], row[5], row[6]) if row[3] is not None else None
        return Listed(row[0], row[1], row[2]), remembered

    def lookup_many(self, keys: Sequence[str]) -> dict[str, tuple[Listed, Remembered | None]]:
        """``lookup`` for a batch of the walk, in a query per ``LOOKUP_BATCH`` keys, a fraction of the cost of a
        point query per key. Keys the listing does not have are left out."""
        found: dict[str, tuple[Listed, Remembered | None]] = {}
        if not self.listed_rows:
            return found
        for start in range(0, len(keys), LOOKUP_BATCH):
            batch = keys[start : start + LOOKUP_BATCH]
            rows = self._db.execute(
                "SELECT l.key, l.size, l.etag, l.md5, o.size, o.mtime_ns, o.etag, o.checksum FROM listing AS l"
                " LEFT JOIN objects AS o ON o.store = ? AND o.key = l.key"
                f" WHERE l.key IN ({','.join('?' * len(batch))})",
                (self._store, *batch),
            )
            for key, size, etag, md5, r_size, r_mtime, r_etag, r_sum in rows:
                remembered = Remembered(r_size, r_mtime, r_etag, r_sum) if r_size is not None else None
                found[key] = (Listed(size, etag, md5), remembered)
        return found

    # ``--delete``: the keys the walk saw, and those listed that none of them is.

    def add_seen(self, keys: Sequence[str]) -> None:
        """Keys the walk mapped a source file to (uploaded, skipped or failed): kept at the destination. A temporary
        table like the listing's, created on first use: a million keys cost disk pages, not memory."""
        if not self._seen_table:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
            self._seen_table = True
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(key,) for key in keys])
        self._db.commit()  # never leave a transaction open: other runs on this machine share the file

    def unseen_listed(self, prefix: str, *, page_rows: int = LOOKUP_BATCH) -> Iterator[list[str]]:
        """The listed keys under ``prefix`` that no walked file maps to, in key order, a page at a time (keyset
        paging: no cursor stays open across the caller's awaits)."""
        if not self._seen_table:
            self.add_seen(())
        after = ""
        while True:
            rows = self._db.execute(
                "SELECT l.key FROM listing AS l WHERE l.key > ? AND substr(l.key, 1, ?) = ?"
                " AND NOT EXISTS (SELECT 1 FROM seen AS s WHERE s.key = l.key) ORDER BY l.key LIMIT ?",
                (after, len(prefix), prefix, page_rows),
            ).fetchall()
            if not rows:
                return
            page = [row[0] for row in rows]
            yield page
            after = page[-1]

    # What earlier runs uploaded.

    def remember(self, key: str, size: int, mtime_ns: int, etag: str, checksum: str = "") -> None:
        """``checksum``: the whole-object checksum the upload sent (``crc32:BASE64``), ``""`` for none."""
        self._remembered.append((self._store, key, size, mtime_ns, normal_etag(etag), checksum))
        if len(self._remembered) >= COMMIT_EVERY_ROWS or time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
            self._flush()

    # Multipart uploads in progress.

    def remember_upload(self, key: str, upload: OpenUpload) -> None:
        """Committed at once: this is what a run killed a second later needs to resume."""
        self._db.execute(
            "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._store,
                key,
                upload.upload_id,
                upload.size,
                upload.mtime_ns,
                upload.part_size,
                upload.checksum,
                time.time(),
            ),
        )
        self._db.commit()

    def open_upload(self, key: str, upload_id: str) -> OpenUpload | None:
        row = self._db.execute(
            "SELECT size, mtime_ns, part_size, checksum FROM uploads WHERE store = ? AND key = ? AND upload_id = ?",
            (self._store, key, upload_id),
        ).fetchone()
        return OpenUpload(upload_id, row[0], row[1], row[2], row[3]) if row is not None else None

    def forget_upload(self, key: str, upload_id: str) -> None:
        self._db.execute(
            "DELETE FROM uploads WHERE store = ? AND key = ? AND upload_id = ?", (self._store, key, upload_id)
        )
        self._db.commit()  # never leave a write transaction open: shards on one machine share the file
