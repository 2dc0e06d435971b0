"""Configuration: embedded defaults, overridden by a TOML file and the command line.

Everything a site may change is here as data; the rest of the switch reads
these values and never reads the environment itself.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any

from switch.ledger.database import Timeouts


class ConfigError(Exception):
    """The configuration file or a setting is wrong; the message names it."""


@dataclass(frozen=True)
class ChannelSettings:
    """One listening channel: where, which terminals, which framing."""

    name: str
    kind: str  # ATM, POS or HOST: which terminals may use it
    port: int
    host: str = "127.0.0.1"
    framing: str = "binary2"  # binary2 (2-byte big-endian) or ascii4
    tpdu: bool = False
    max_frame: int = 8192
    idle_timeout: float = 300.0
    max_in_flight: int = 256
    mac: str = "none"  # none, x919 (ISO 9797-1 alg 3) or cmac: DE 64/128 on every message
    enabled: bool = True


@dataclass(frozen=True)
class LedgerSettings:
    batch_max: int = 500
    queue_max: int = 20000
    read_threads: int = 4
    read_queue_max: int = 2000
    # seconds from a request's arrival: by then it is answered, with its outcome or with
    # 96 (nothing recorded); only a request whose COMMIT is under way waits for the truth
    deadline: float = 10.0
    request_retention_days: int = 35  # request rows kept (< 300: DE 7 has no year)
    purge_every: float = 3600.0  # seconds between purges of expired request rows


@dataclass(frozen=True)
class OutboxSettings:
    """The delivery loop of advices and reversals to online billers (switch/delivery.py)."""

    poll: float = 1.0  # seconds between looks for due rows (at once again after a full batch)
    batch: int = 20  # rows claimed per look
    backoff_base: float = 2.0  # seconds before the second attempt; doubles per attempt
    backoff_cap: float = 600.0  # seconds: the longest wait between two attempts
    lease: float = 60.0  # seconds a node owns a claimed row; then another node may take it
    max_in_flight: int = 4  # deliveries at once per biller on one node


@dataclass(frozen=True)
class HsmSettings:
    url: str = "software"  # the in-process HSM, or tcp://host:1500 (simulator or payShield)
    header_length: int = 4
    pool_size: int = 2
    timeout: float = 2.0
    key_grace: float = 300.0  # seconds an old working key stays valid after a key change
    key_refresh: float = 1.0  # seconds between checks for keys changed by another node
    # The software HSM's LMK: a file made by `billswitch lmk generate`, or "test" for the
    # public payShield test LMK (demo and tests only). Nothing here: the switch will not start.
    lmk: str = ""
    lmk_check: str = ""  # the LMK check value the HSM must report (NC), 6 to 16 hex
    allow_test_lmk: bool = False  # accept a TCP HSM (or LMK file) holding the test LMK


@dataclass(frozen=True)
class IssuerSettings:
    """The network's own wallet cards (on-us): which PANs, how many PIN tries."""

    bins: tuple[str, ...] = ("999000",)
    pin_tries: int = 3


@dataclass(frozen=True)
class Settings:
    home: Path = Path("var")
    db: str = ""  # empty: SQLite under home
    cutover: time = time(23, 0)
    timezone: str = "UTC"
    log_level: str = "info"
    log_json: bool = False
    metrics_port: int = 9108  # worker i of several serves metrics on metrics_port + i
    workers: int = 1  # processes sharing the channel ports (switch/workers.py)
    sign_on_cache: float = 5.0  # seconds a node trusts its memory of a terminal's sign-on
    gil_switch_interval: float = 0.0005  # seconds; see docs/benchmarks.md
    reference_refresh: float = 30.0  # seconds between re-reads of terminals and billers
    stop_timeout: float = 15.0  # seconds a stop waits for answers in flight before closing
    demo_data: bool = False  # load the public demo data (test LMK) into an empty database
    demo_biller_sim: bool = True  # with demo data: the reference biller server on 8090 too
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    hsm: HsmSettings = field(default_factory=HsmSettings)
    database: Timeouts = field(default_factory=Timeouts)  # [database]: bounds on waiting
    issuer: IssuerSettings = field(default_factory=IssuerSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    channels: tuple[ChannelSettings, ...] = (
        ChannelSettings("atm", "ATM", 8583, mac="x919"),
        ChannelSettings("pos", "POS", 8584, mac="x919"),
        ChannelSettings("host", "HOST", 8585),
    )

    def db_url(self) -> str:
        from switch.ledger.database import sqlite_url

        return self.db or sqlite_url(self.home)


def load(path: Path | None = None, *, home: Path | None = None, db: str | None = None) -> Settings:
    """Defaults, then the TOML file, then explicit arguments and ``BILLSWITCH_DB``."""
    settings = Settings()
    if path is not None:
        settings = _apply_file(settings, path)
    if home is not None:
        settings = replace(settings, home=home)
    db = db or os.environ.get("BILLSWITCH_DB")
    if db:
        settings = replace(settings, db=db)
    return check(settings)


def check(settings: Settings, where: str = "") -> Settings:
    """``settings`` if every value is allowed (switch/settings_table.py), else a ConfigError
    naming the first one that is not (and ``where`` it came from)."""
    from switch.settings_table import violations

    problems = violations(settings)
    if problems:
        raise ConfigError(f"{where}{problems[0]}")
    return settings


def _apply_file(settings: Settings, path: Path) -> Settings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        merged = _merge(settings, data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return check(merged, f"{path}: ")


def _merge(settings: Settings, data: dict[str, Any]) -> Settings:
    top = {k: v for k, v in data.items() if k not in _SECTIONS and k != "channels"}
    changes = _coerce(Settings, top, known_tables=[*_SECTIONS, "channels"])
    for name, cls in _SECTIONS.items():
        if name in data:
            values = _coerce(cls, _table(data[name], f"[{name}]"), f"[{name}] ")
            changes[name] = replace(getattr(settings, name), **values)
    if "channels" in data:
        channels = _table(data["channels"], "[channels.NAME]")
        changes["channels"] = _merge_channels(settings.channels, channels)
    return replace(settings, **changes)


def _table(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name.split('.')[0].strip('[]')} = {value!r}: must be a table {name}")
    return value


def _merge_channels(current: tuple[ChannelSettings, ...], data: dict[str, Any]) -> tuple:
    by_name = {c.name: c for c in current}
    for name, values in data.items():
        values = _table(values, f"[channels.{name}]")
        base = by_name.get(name) or ChannelSettings(name, values.get("kind", "POS"), 0)
        by_name[name] = replace(base, **_coerce(ChannelSettings, values, f"[channels.{name}] "))
    return tuple(by_name.values())


_SECTIONS: dict[str, type] = {
    "ledger": LedgerSettings,
    "hsm": HsmSettings,
    "issuer": IssuerSettings,
    "database": Timeouts,
    "outbox": OutboxSettings,
}


def _strings(value: Any) -> tuple[str, ...]:
    """A TOML list of strings (a lone string is refused, not split into characters)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('expected a list of strings, e.g. ["999000"]')
    return tuple(value)


_CONVERTERS: dict[str, Any] = {
    "bins": _strings,
    "home": Path,
    "cutover": time.fromisoformat,
}


def _coerce(
    cls: type, values: dict[str, Any], where: str = "", known_tables: list[str] | None = None
) -> dict[str, Any]:
    known = [f.name for f in fields(cls) if f.name not in (known_tables or [])]
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = [_hint(name, known + (known_tables or [])) for name in unknown]
        raise ValueError(f"{where}unknown setting(s) {unknown}{''.join(hints)}")
    types = {f.name: f.type for f in fields(cls)}
    result = {}
    for key, value in values.items():
        try:
            result[key] = _CONVERTERS.get(key, lambda v: v)(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}{key} = {value!r}: {exc}") from None
        _check_type(where, key, value, types[key])
    return result


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_SIMPLE_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(where: str, key: str, value: Any, declared: Any) -> None:
    expected = _SIMPLE_TYPES.get(str(declared))
    wrong = expected and (
        not isinstance(value, expected) or (bool not in expected and isinstance(value, bool))
    )
    if wrong:
        raise ValueError(f"{where}{key} = {value!r}: expected {declared}")


def show_settings(settings: Settings) -> str:
    """The effective settings as TOML that ``--config`` would accept; passwords masked."""
    top, tables = [], []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "db":
            value = masked_url(value)
        if f.name == "channels":
            for channel in value:
                rows = [(k, v) for k, v in _items(channel) if k != "name"]
                tables.append((f"channels.{channel.name}", rows))
        elif hasattr(value, "__dataclass_fields__"):
            tables.append((f.name, list(_items(value))))
        else:
            top.append((f.name, value))
    lines = [f"{k} = {show_value(v)}" for k, v in top]
    for name, rows in tables:
        lines += ["", f"[{name}]", *(f"{k} = {show_value(v)}" for k, v in rows)]
    return "\n".join(lines) + "\n"


def _items(obj: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(obj, f.name)) for f in fields(obj)]


def masked_url(url: str) -> str:
    """A database URL fit to print: its password, if any, as ***."""
    if not url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as nothing rather than leak a secret
        return "(unparsable URL)"


def show_value(value: Any) -> str:
    """``value`` as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, time):
        return f'"{value.strftime("%H:%M")}"'
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
