"""Files other systems pick up (settlement reports, payment files): whole or not at all.

A reader (a bank's transfer, a biller's download, a person) must never see half a
file, nor an old file truncated by a crash: the bytes go to a temporary file in the
same folder, are flushed to disk, then renamed over the name (atomic on POSIX), and
the folder itself is synced so the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FOLDER_MODE = 0o700  # the home's own rule (private_files.py): the owner only
FILE_MODE = 0o600


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step, creating its folder if needed."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    sync_folder(folder)


def sync_folder(folder: Path) -> None:
    """Renames into ``folder`` survive a crash once the folder itself is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
