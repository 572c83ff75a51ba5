"""What the s3:// backend remembers between passes, in one small file in the
archive directory (``.logjam-s3-state.json``), rewritten atomically:

- per store (endpoint and bucket), whether it honours ``If-None-Match: *``
  on PutObject and on CompleteMultipartUpload (the probe's answer), so that
  later passes cost nothing;
- the journal of multipart uploads in flight: each upload id is recorded
  (fsynced) before the first part and dropped after Complete or Abort, so
  the next pass aborts exactly what a killed pass left, and nothing another
  host started;
- probe objects not yet deleted.

Only the pass holding the archive's upload lock reads or writes it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import secrets
import threading
import time
from typing import Any

from logjam import fsutil

log = logging.getLogger("logjam.upload")

STATE_NAME = ".logjam-s3-state.json"
# A fixed temporary name (one writer: the lock holder). Not a fsutil temp
# name: logjam-compress removes those from the archive under its own lock.
STATE_TEMP = ".logjam-s3-state.json.new"
HONOURED, IGNORED, DENIED = "honoured", "ignored", "denied"


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class S3State:
    """The archive's S3 state file, loaded once per pass. Thread-safe."""

    def __init__(self, archive_fd: int) -> None:
        self.archive_fd = archive_fd
        self._lock = threading.Lock()
        self._data = self._load()

    def _load(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"version": 1, "stores": {}, "multipart": [], "probes": []}
        try:
            fd = os.open(STATE_NAME, fsutil.READ_FLAGS, dir_fd=self.archive_fd)
        except FileNotFoundError:
            return empty
        except OSError as error:
            log.warning("cannot read %s (%s); starting afresh", STATE_NAME, error.strerror)
            return empty
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = json.loads(b"".join(chunks))
            if not isinstance(data, dict) or data.get("version") != 1:
                raise ValueError("not a version 1 state file")
        except (OSError, ValueError) as error:
            log.warning("cannot read %s (%s); starting afresh (an upload a killed pass left is now "
                        "for the bucket's lifecycle rule)", STATE_NAME, error)
            return empty
        finally:
            os.close(fd)
        for field, value in empty.items():
            data.setdefault(field, value)
        return data

    def _save(self) -> None:
        # Called with self._lock held.
        if not (self._data["stores"] or self._data["multipart"] or self._data["probes"]):
            # Nothing to remember (a probe refused outright): leave no file.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(STATE_NAME, dir_fd=self.archive_fd)
                fsutil.fsync_dir(self.archive_fd)
            return
        text = json.dumps(self._data, indent=1, sort_keys=True).encode() + b"\n"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(STATE_TEMP, dir_fd=self.archive_fd)
        fd = os.open(STATE_TEMP, fsutil.CREATE_FLAGS, 0o600, dir_fd=self.archive_fd)
        try:
            fsutil.write_all(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(STATE_TEMP, STATE_NAME, src_dir_fd=self.archive_fd, dst_dir_fd=self.archive_fd)
        fsutil.fsync_dir(self.archive_fd)

    # -- what the store does ----------------------------------------------------

    def store(self, store: str) -> dict[str, str] | None:
        """The probe's answer for store ({'put': ..., 'complete': ...}), or None."""
        with self._lock:
            found = self._data["stores"].get(store)
            return dict(found) if found else None

    def set_store(self, store: str, answer: dict[str, str]) -> None:
        with self._lock:
            self._data["stores"][store] = {**answer, "probed": now_text()}
            self._save()

    # -- the multipart journal ----------------------------------------------------

    def begin_upload(self, store: str, key: str) -> str:
        """Durably records that a multipart upload of key is about to be
        created (before CreateMultipartUpload is sent). Returns its entry's token."""
        token = secrets.token_hex(8)
        with self._lock:
            self._data["multipart"].append({"token": token, "store": store, "key": key, "upload_id": None,
                                            "started": time.time()})
            self._save()
        return token

    def set_upload_id(self, token: str, upload_id: str) -> None:
        """Durably records the id S3 gave the upload (before its first part)."""
        with self._lock:
            for entry in self._data["multipart"]:
                if entry.get("token") == token:
                    entry["upload_id"] = upload_id
            self._save()

    def drop_upload(self, token: str) -> None:
        """Forgets an upload that was completed or aborted."""
        with self._lock:
            entries = self._data["multipart"]
            kept = [entry for entry in entries if entry.get("token") != token]
            if len(kept) != len(entries):
                self._data["multipart"] = kept
                self._save()

    def uploads(self, store: str) -> list[dict[str, Any]]:
        """store's journal entries ({token, key, upload_id or None, started})."""
        with self._lock:
            return [dict(entry) for entry in self._data["multipart"] if entry.get("store") == store]

    # -- probe objects ---------------------------------------------------------------

    def add_probe(self, store: str, key: str) -> None:
        with self._lock:
            self._data["probes"].append({"store": store, "key": key})
            self._save()

    def drop_probe(self, store: str, key: str) -> None:
        with self._lock:
            self._data["probes"] = [entry for entry in self._data["probes"]
                                    if (entry.get("store"), entry.get("key")) != (store, key)]
            self._save()

    def probes(self, store: str) -> list[str]:
        with self._lock:
            return [entry["key"] for entry in self._data["probes"] if entry.get("store") == store]
