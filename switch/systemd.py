"""systemd's notify protocol: ``READY=1`` once listening, ``STOPPING=1`` when a stop begins.

With ``Type=notify`` (deploy/systemd/billswitch.service) systemd starts
dependent units only after the switch listens, and knows a stop is under
way. Outside systemd ``NOTIFY_SOCKET`` is unset and this does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False  # a notify socket that went away must not stop the switch
    return True
