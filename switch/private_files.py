"""The switch's files are its owner's only: home folder 0700, SQLite database 0600.

The database holds every key (under the LMK), the cards' PIN verification
values and the ledger; the home holds the hashing key and the switch's signing key
(switch/signing_key.py). Nothing in them is for
other users of the machine, so the home is created 0700 and the SQLite file
0600 before SQLite opens it (SQLite gives its -wal and -shm files the
database file's mode). A database file found readable by others is
tightened, with a warning.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

HOME_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def make_home(home: Path) -> None:
    """Create the home folder (and missing parents) readable by the owner only."""
    if not home.exists():
        home.mkdir(parents=True, mode=HOME_MODE)
        os.chmod(home, HOME_MODE)  # mkdir's mode passes through the umask


def private_database(url: str) -> None:
    """For a SQLite URL: create the database file 0600, tighten an existing one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        return
    except FileExistsError:
        pass
    for suffix in SQLITE_COMPANIONS:
        tighten(Path(f"{path}{suffix}"))


def create_private(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file ``path``, mode 0600, all at once or not at all.

    Written beside it first and then linked into place, so that a reader never sees a
    half-written file and two processes creating it at once agree on one: returns False
    (and leaves the file alone) when ``path`` already exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(temp, path)  # fails if the file exists: the first writer wins
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)


def tighten(path: Path, what: str = "database file") -> None:
    """Make an existing file owner-only if others may read it, with a warning."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700)
        log.warning(f"{what} was readable by others: made owner-only", file=str(path))
