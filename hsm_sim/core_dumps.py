"""No core dumps: a process holding clear keys must not write its memory to disk.

Python cannot wipe a key it has decrypted (bytes are immutable and copied
freely), and the HSM keeps working keys unwrapped in a cache, so a core file
of the switch or of the simulator could hold clear keys. Both disable core
dumps at start: RLIMIT_CORE 0 (no core file), and on Linux PR_SET_DUMPABLE 0
(no core either way, and no ptrace attach or /proc/<pid>/mem read by other
processes of the same user). A hardware HSM keeps its keys inside tamper-
resistant memory instead; production should use one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def forbid_core_dumps() -> None:
    """Set RLIMIT_CORE to 0 (soft and hard) and, on Linux, make the process not dumpable."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
