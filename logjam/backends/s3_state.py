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
from logjam.errors import Skipped

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
            fd, _info = fsutil.open_regular(self.archive_fd, STATE_NAME)  # never a FIFO
        except FileNotFoundError:
            return empty
        except (OSError, Skipped) as error:
            log.warning("cannot read %s (%s); starting afresh", STATE_NAME,
                        error.strerror if isinstance(error, OSError) else error)
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
        kept, dropped = _kept(data)
        if dropped:
            # Valid JSON of the wrong shape: what is well formed is kept (a
            # journal entry lost is an upload of a killed pass left unaborted,
            # its parts billed until the bucket's lifecycle rule removes them;
            # a store's answer lost costs one probe); the file is rewritten
            # at once, so this is said once.
            log.warning("%s has %d malformed entr%s (%s); left out, the rest kept (an upload of a killed pass "
                        "left out is for the bucket's lifecycle rule)", STATE_NAME, len(dropped),
                        "y" if len(dropped) == 1 else "ies", "; ".join(dropped[:3]))
            self._data = kept
            with contextlib.suppress(OSError):
                self._save()
        return kept

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


ANSWERS = (HONOURED, IGNORED, DENIED)


def _kept(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Takes a parsed version 1 state file. Returns (what is well formed in
    it, a description of each part left out)."""
    kept: dict[str, Any] = {"version": 1, "stores": {}, "multipart": [], "probes": []}
    dropped: list[str] = []
    stores = data.get("stores", {})
    if isinstance(stores, dict):
        for store, answer in stores.items():
            if isinstance(answer, dict) and answer.get("put") in ANSWERS and answer.get("complete") in ANSWERS:
                kept["stores"][store] = answer
            else:
                dropped.append(f"stores[{store!r}]")
    else:
        dropped.append("stores")
    multipart = data.get("multipart", [])
    for index, entry in enumerate(multipart if isinstance(multipart, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("store"), str) and isinstance(entry.get("key"), str) \
                and entry["key"] and isinstance(entry.get("upload_id"), (str, type(None))):
            token = entry.get("token")
            started = entry.get("started")
            kept["multipart"].append({**entry, "token": token if isinstance(token, str) else secrets.token_hex(8),
                                      "started": started if isinstance(started, (int, float)) else time.time()})
        else:
            dropped.append(f"multipart[{index}]")
    if not isinstance(multipart, list):
        dropped.append("multipart")
    probes = data.get("probes", [])
    for index, entry in enumerate(probes if isinstance(probes, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("store"), str) and isinstance(entry.get("key"), str) \
                and entry["key"]:
            kept["probes"].append(entry)
        else:
            dropped.append(f"probes[{index}]")
    if not isinstance(probes, list):
        dropped.append("probes")
    return kept, dropped
