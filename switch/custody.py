"""Which LMK the switch's keys are under, and the HSM that holds it.

Every key the switch stores is encrypted under an LMK; whoever has that LMK
and the database has every key. So the LMK is chosen by configuration, never
by default, and named by its check value wherever keys are touched:

- ``[hsm] url = "software"`` (in-process HSM): ``[hsm] lmk`` is an LMK file
  (``billswitch lmk generate``) or ``"test"`` for the public payShield test
  LMK. Nothing set: nothing starts. A file holding the test LMK is refused
  unless ``allow_test_lmk = true``; a file of a real LMK that other users
  may read is refused (as ssh refuses such a private key).
- ``url = "tcp://..."`` (simulator or payShield): the HSM is asked for its LMK
  check value (NC) before anything else, and it must be ``[hsm] lmk_check``.
  The test LMK's is refused unless ``allow_test_lmk = true`` (or ``lmk =
  "test"``, which says the same).

The test LMK, where allowed, is warned of at every start.
"""

from __future__ import annotations

import stat
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsm_sim.blocking import BlockingPayShield, result_of
from hsm_sim.crypto import lmk
from hsm_sim.interface import Hsm, HsmFailure
from switch.config import HsmSettings

TEST = "test"  # [hsm] lmk = "test": the public payShield test LMK, said explicitly


class CustodyError(Exception):
    """The LMK is missing, unreadable, or not the one expected: one line, exit status 2."""


@dataclass(frozen=True)
class Custody:
    """The HSM to use and the LMK it holds, by check value (16 hex)."""

    hsm: Hsm
    check_value: str

    @property
    def name(self) -> str:
        """How outputs name the LMK: 'LMK 7D2227'."""
        return f"LMK {self.check_value[:6]}"

    @property
    def is_test(self) -> bool:
        return lmk.is_test_lmk(self.check_value)

    def warning(self) -> str | None:
        """The loud line of every start under the test LMK, or None."""
        if not self.is_test:
            return None
        return (
            f"running under the PUBLIC payShield TEST LMK (check value {self.check_value[:6]}):"
            " every key stored under it is readable by anyone; tests and demos only"
        )


def software_lmk(settings: HsmSettings) -> lmk.LmkSet:
    """The software HSM's LMK set, from ``[hsm] lmk`` (a file, or "test")."""
    if not settings.lmk:
        raise CustodyError(
            "[hsm] lmk is not set: give an LMK file (billswitch lmk generate --out FILE),"
            ' or lmk = "test" for the public test LMK (billswitch run --demo does)'
        )
    if settings.lmk == TEST:
        return lmk.TEST_LMK
    path = Path(settings.lmk)
    try:
        lmk_set = lmk.load_lmk_file(path)
    except OSError as exc:
        raise CustodyError(f"cannot read LMK file {path}: {exc.strerror}") from None
    except ValueError as exc:  # the message names a line number, never its text
        raise CustodyError(f"{path} is not an LMK file: {exc}") from None
    if lmk.is_test_lmk(lmk.lmk_check_value(lmk_set)):
        if not settings.allow_test_lmk:
            raise CustodyError(
                f"{path} holds the public payShield test LMK: refused"
                ' (lmk = "test" or allow_test_lmk = true say it is meant)'
            )
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise CustodyError(
            f"LMK file {path} is readable by other users"
            f" (mode {stat.S_IMODE(path.stat().st_mode):04o}): chmod 600 it"
        )
    return lmk_set


def _expected(settings: HsmSettings) -> str:
    value = settings.lmk_check.strip().upper()
    if value and (not 6 <= len(value) <= 16 or value.strip(string.hexdigits.upper())):
        raise CustodyError(f"[hsm] lmk_check = {settings.lmk_check!r}: 6 to 16 hex digits")
    return value


def check_reported(settings: HsmSettings, where: str, reported: str) -> None:
    """Refuse an HSM whose LMK (check value ``reported``) is not the configured one."""
    expected = _expected(settings)
    reported = reported.upper()
    if lmk.is_test_lmk(reported) and not (settings.allow_test_lmk or settings.lmk == TEST):
        raise CustodyError(
            f"the HSM at {where} holds the public payShield test LMK ({reported[:6]}): refused;"
            " allow_test_lmk = true in [hsm] allows it (tests and demos only)"
        )
    if expected and not reported.startswith(expected):
        raise CustodyError(
            f"the HSM at {where} holds LMK {reported}, but [hsm] lmk_check expects {expected}"
        )
    if not expected and not lmk.is_test_lmk(reported):
        raise CustodyError(
            f"the HSM at {where} holds LMK {reported}: once you have confirmed it is yours,"
            f' set [hsm] lmk_check = "{reported}"'
        )


def open_custody(settings: HsmSettings, reactor: Any = None) -> Custody:
    """The configured HSM, its LMK checked. With a reactor, a TCP HSM is the pooled
    ``PayShieldClient``; without one (operator commands), a blocking connection."""
    if settings.url == "software":
        from hsm_sim.software import SoftwareHsm

        lmk_set = software_lmk(settings)
        check = lmk.lmk_check_value(lmk_set)
        expected = _expected(settings)
        if expected and not check.startswith(expected):
            raise CustodyError(f"[hsm] lmk holds LMK {check}, but lmk_check expects {expected}")
        return Custody(SoftwareHsm(lmk_set), check)
    if settings.lmk not in ("", TEST):
        raise CustodyError(
            "[hsm] lmk names a file, but a TCP HSM holds its own LMK: set lmk_check instead"
        )
    probe = BlockingPayShield(settings.url, settings.header_length, settings.timeout)
    try:
        reported = result_of(probe.diagnostics()).lmk_check_value
    except HsmFailure as exc:
        raise CustodyError(f"cannot ask the HSM at {settings.url} for its LMK: {exc}") from None
    finally:
        if reactor is not None:
            probe.close()
    check_reported(settings, settings.url, reported)
    if reactor is None:
        return Custody(probe, reported)
    from hsm_sim.client import PayShieldClient

    client = PayShieldClient(
        settings.url, reactor, settings.header_length, settings.pool_size, settings.timeout
    )
    return Custody(client, reported)
