"""Every setting's allowed values and meaning: one table for the validator and the README.

``switch/config.py`` holds the settings and their defaults (dataclasses) and
merges the TOML file; this table says what each value may be. The validator
checks a loaded configuration against it, and the README's settings table is
generated from it (``python -m switch.settings_table``), so the two cannot
drift: a test fails when a setting has no row or the README is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Check = Callable[[Any], str | None]  # the problem with a value, or None


@dataclass(frozen=True)
class Rule:
    meaning: str
    allowed: str  # for people: what the README's "allowed" column says
    check: Check | None = None


def between(low: float, high: float, *, above: bool = False) -> Check:
    """A number in [low, high] (``above``: strictly more than ``low``)."""

    def check(value: Any) -> str | None:
        if (value <= low if above else value < low) or value > high:
            return f"must be {'more than' if above else 'from'} {_num(low)} to {_num(high)}"
        return None

    return check


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "not a time zone of the IANA database (e.g. UTC, Asia/Baku)"
    return None


def _hsm_url(value: Any) -> str | None:
    if value == "software":
        return None
    match = re.fullmatch(r"tcp://([^:/]+):(\d+)", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        return 'either "software" or "tcp://HOST:PORT"'
    return None


def _db_url(value: Any) -> str | None:
    if not value:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(value).get_dialect().import_dbapi()
    except NoSuchModuleError:  # an ArgumentError too: first
        return "no such database dialect"
    except (ArgumentError, ValueError):
        return "not a database URL (e.g. postgresql+psycopg2://user@host:5432/db)"
    except ImportError as exc:
        return f"its driver is not installed ({exc.name or exc})"
    return None


def _hex_or_empty(value: Any) -> str | None:
    if value and not re.fullmatch(r"[0-9A-Fa-f]{6,16}", value):
        return "6 to 16 hex digits (the check value the HSM reports)"
    return None


def _bins(value: Any) -> str | None:
    if not all(isinstance(b, str) and b.isdigit() and 4 <= len(b) <= 11 for b in value):
        return "a list of BINs as strings of 4 to 11 digits"
    return None


SECONDS = "seconds"

# Keys: "name" for top-level settings, "section.name" for tables, "channels.*.name"
# for every channel's table.
RULES: dict[str, Rule] = {
    "home": Rule("folder for the SQLite database and `hash.key`", "a path"),
    "db": Rule(
        "SQLAlchemy URL of the database (empty: SQLite under `home`); or `BILLSWITCH_DB`",
        "a URL whose driver is installed",
        _db_url,
    ),
    "cutover": Rule("business day cut-over, in `timezone`", '"HH:MM"'),
    "timezone": Rule("time zone of the business day", "an IANA zone", _timezone),
    "log_level": Rule(
        "least severe log level written",
        "debug, info, warning, error",
        one_of("debug", "info", "warning", "error"),
    ),  # fmt: skip
    "log_json": Rule("log lines as JSON objects", "true, false"),
    "metrics_port": Rule(
        "Prometheus metrics port on 127.0.0.1 (0 disables; worker i uses port + i)",
        "0-65535",
        between(0, 65535),
    ),
    "workers": Rule("switch processes sharing the channel ports", "1-64", between(1, 64)),
    "sign_on_cache": Rule(
        f"{SECONDS} a node trusts its memory of a sign-on", "0-3600", between(0, 3600)
    ),
    "gil_switch_interval": Rule(
        f"{SECONDS}; CPython's thread switch interval (docs/benchmarks.md)",
        "0-0.1, more than 0",
        between(0, 0.1, above=True),
    ),
    "reference_refresh": Rule(
        f"{SECONDS} between re-reads of terminals and billers",
        "0-86400, more than 0",
        between(0, 86400, above=True),
    ),
    "stop_timeout": Rule(
        f"{SECONDS} a stop waits for answers in flight before closing connections",
        "0-3600, more than 0",
        between(0, 3600, above=True),
    ),
    "demo_data": Rule("load the demo data into an empty database", "true, false"),
    "debt_file_max_bytes": Rule(
        "bytes a held biller's debt file may have (`billswitch debts import`); a larger"
        " file is refused before it is read. A million debts take about 150 MB",
        "1024-1073741824",
        between(1024, 1 << 30),
    ),
    "demo_biller_sim": Rule(
        "with demo_data: serve the online demo billers (TEL01, PWR01) from the reference"
        " biller server inside the switch, on 127.0.0.1:8090 (false: run `billswitch"
        " biller-sim` yourself)",
        "true, false",
    ),
    "ledger.batch_max": Rule("orders per group commit", "1-10000", between(1, 10000)),
    "ledger.queue_max": Rule(
        "queued ledger orders before new ones get 91", "1-1000000", between(1, 1_000_000)
    ),
    "ledger.read_threads": Rule("database reader threads", "1-64", between(1, 64)),
    "ledger.read_queue_max": Rule(
        "pending reads before new requests get 91 (0 refuses every read: for tests)",
        "0-1000000",
        between(0, 1_000_000),
    ),
    "ledger.deadline": Rule(
        f"{SECONDS} from a request's arrival by which it is answered (96 if nothing was"
        " recorded; only a request whose COMMIT is under way waits for the truth); keep it"
        " below the acquirers' timeout, usually 30 s",
        "0-300, more than 0",
        between(0, 300, above=True),
    ),
    "ledger.request_retention_days": Rule(
        "days request rows and transaction identities are kept to recognise repeats and"
        " reversals (DE 7 has no year: a year's identities would collide); outbox rows a"
        " biller acknowledged (done) go after as many days, pending and parked ones never",
        "1-299",
        between(1, 299),
    ),
    "ledger.purge_every": Rule(
        f"{SECONDS} between purges of expired rows (off the hot path)",
        "0-86400, more than 0",
        between(0, 86400, above=True),
    ),
    "database.connect_timeout": Rule(
        f"{SECONDS} to open a PostgreSQL connection (0: no bound)", "0-60", between(0, 60)
    ),
    "database.keepalives_idle": Rule(
        f"{SECONDS} of silence before TCP keepalives probe PostgreSQL", "0-3600", between(0, 3600)
    ),
    "database.keepalives_interval": Rule(
        f"{SECONDS} between keepalive probes", "0-600", between(0, 600)
    ),
    "database.keepalives_count": Rule(
        "unanswered probes before the connection is dead", "0-100", between(0, 100)
    ),
    "database.tcp_user_timeout": Rule(
        f"{SECONDS} data sent to PostgreSQL may stay unacknowledged (0: no bound)",
        "0-3600",
        between(0, 3600),
    ),
    "database.statement_timeout": Rule(
        f"{SECONDS} one statement may run (0: no bound; migrations have none)",
        "0-3600",
        between(0, 3600),
    ),
    "database.lock_timeout": Rule(
        f"{SECONDS} one lock may be waited for (0: no bound)", "0-3600", between(0, 3600)
    ),
    "database.idle_in_transaction_timeout": Rule(
        f"{SECONDS} before PostgreSQL ends a session left idle in a transaction",
        "0-86400",
        between(0, 86400),
    ),
    "database.sqlite_busy_timeout": Rule(
        f"{SECONDS} to wait for SQLite's write lock", "0-3600", between(0, 3600)
    ),
    "hsm.url": Rule(
        '`"software"` (in process) or `"tcp://HOST:PORT"` (simulator or payShield)',
        "software, tcp://HOST:PORT",
        _hsm_url,
    ),
    "hsm.lmk": Rule(
        'the software HSM\'s LMK: a file (0600, `billswitch lmk generate`), or `"test"` for'
        " the public test LMK; required (none: the switch does not start)",
        "a path, test",
    ),
    "hsm.lmk_check": Rule(
        "the LMK check value the HSM must report (a TCP HSM: required)",
        "hex, or empty",
        _hex_or_empty,
    ),  # fmt: skip
    "hsm.allow_test_lmk": Rule("accept the public test LMK (tests and demos only)", "true, false"),
    "hsm.header_length": Rule("payShield message header characters", "0-32", between(0, 32)),
    "hsm.pool_size": Rule("connections to a TCP HSM", "1-64", between(1, 64)),
    "hsm.timeout": Rule(
        f"{SECONDS} before an HSM call fails (answer 96)",
        "0-3600, more than 0",
        between(0, 3600, above=True),
    ),  # fmt: skip
    "hsm.key_grace": Rule(
        f"{SECONDS} a replaced TPK/TAK keeps working", "0-604800", between(0, 604800)
    ),
    "hsm.key_refresh": Rule(
        f"{SECONDS} between checks for keys changed by another node",
        "0-3600, more than 0",
        between(0, 3600, above=True),
    ),
    "issuer.bins": Rule("BINs of the network's own wallet cards", "list of digit strings", _bins),
    "issuer.pin_tries": Rule("wrong PINs before a card gets 75", "1-20", between(1, 20)),
    "outbox.poll": Rule(
        f"{SECONDS} between looks for advices and reversals due to online billers",
        "0-3600, more than 0",
        between(0, 3600, above=True),
    ),
    "outbox.batch": Rule("outbox rows claimed per look", "1-1000", between(1, 1000)),
    "outbox.backoff_base": Rule(
        f"{SECONDS} before a failed delivery's second attempt (doubling, with jitter)",
        "0-3600, more than 0",
        between(0, 3600, above=True),
    ),
    "outbox.backoff_cap": Rule(
        f"{SECONDS}: the longest wait between two attempts of a delivery",
        "0-86400, more than 0",
        between(0, 86400, above=True),
    ),
    "outbox.lease": Rule(
        f"{SECONDS} a node owns a claimed delivery; after it another node may deliver it"
        " (keep it above the billers' call timeouts)",
        "1-3600",
        between(1, 3600),
    ),
    "outbox.max_in_flight": Rule(
        "deliveries at once to one biller from one node", "1-1000", between(1, 1000)
    ),
    "channels.*.kind": Rule(
        "which terminals may use the channel", "ATM, POS, HOST", one_of("ATM", "POS", "HOST")
    ),  # fmt: skip
    "channels.*.port": Rule("TCP port (0: any free port)", "0-65535", between(0, 65535)),
    "channels.*.host": Rule("address to listen on", "an address"),
    "channels.*.framing": Rule(
        "length prefix: 2-byte binary or 4 ASCII digits",
        "binary2, ascii4",
        one_of("binary2", "ascii4"),
    ),  # fmt: skip
    "channels.*.tpdu": Rule("5-byte TPDU after the length, echoed swapped", "true, false"),
    "channels.*.max_frame": Rule("longest accepted message, bytes", "64-65535", between(64, 65535)),
    "channels.*.idle_timeout": Rule(
        f"{SECONDS} of silence before the connection is closed",
        "0-86400, more than 0",
        between(0, 86400, above=True),
    ),
    "channels.*.max_in_flight": Rule(
        "requests in flight per connection before reading pauses",
        "1-100000",
        between(1, 100_000),
    ),  # fmt: skip
    "channels.*.mac": Rule(
        "MAC on every message (DE 64/128)", "none, x919, cmac", one_of("none", "x919", "cmac")
    ),  # fmt: skip
    "channels.*.enabled": Rule("listen on this channel", "true, false"),
}


def violations(settings: Any) -> list[str]:
    """Each setting that breaks its rule, as ``[section] key = value: problem``."""
    found = []
    for where, key, value in _values(settings):
        rule = RULES[_rule_key(where, key)]
        problem = rule.check(value) if rule.check else None
        if problem:
            found.append(f"{_label(where, key)} = {value!r}: {problem}")
    return found


def _values(settings: Any) -> list[tuple[str, str, Any]]:
    """(table, key, value) for every setting; table is '' at the top level."""
    result = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "channels":
            for channel in value:
                result += [
                    (f"channels.{channel.name}", g.name, getattr(channel, g.name))
                    for g in fields(channel)
                    if g.name != "name"
                ]
        elif hasattr(value, "__dataclass_fields__"):
            result += [(f.name, g.name, getattr(value, g.name)) for g in fields(value)]
        else:
            result.append(("", f.name, value))
    return result


def _rule_key(where: str, key: str) -> str:
    if where.startswith("channels."):
        return f"channels.*.{key}"
    return f"{where}.{key}" if where else key


def _label(where: str, key: str) -> str:
    return f"[{where}] {key}" if where else key


def markdown(defaults: Any) -> str:
    """The README's settings table: every setting, its default, what it may be, its meaning."""
    rows = ["| setting | default | allowed | meaning |", "|---|---|---|---|"]
    seen = set()
    for where, key, value in _values(defaults):
        rule_key = _rule_key(where, key)
        if rule_key in seen:
            continue
        seen.add(rule_key)
        label = f"[channels.NAME] {key}" if where.startswith("channels.") else _label(where, key)
        rule = RULES[rule_key]
        rows.append(
            f"| `{label}` | {_default(where, key, value)} | {rule.allowed} | {rule.meaning} |"
        )
    return "\n".join(rows) + "\n"


def _default(where: str, key: str, value: Any) -> str:
    from switch.config import show_value

    if where.startswith("channels.") and key in ("kind", "port", "mac"):
        return "per channel"
    return f"`{show_value(value)}`" if value != "" else "(empty)"


README_START = "<!-- settings table: generated by python -m switch.settings_table -->"
README_END = "<!-- end of settings table -->"


def update_readme(text: str, defaults: Any) -> str:
    """``text`` with the generated table between the markers."""
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    return f"{head}{README_START}\n{markdown(defaults)}{README_END}{tail}"


if __name__ == "__main__":
    from pathlib import Path

    from switch.config import Settings

    readme = Path(__file__).resolve().parent.parent / "README.md"
    readme.write_text(update_readme(readme.read_text(), Settings()))
    print(f"updated {readme}")
