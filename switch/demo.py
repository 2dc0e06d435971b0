"""Demo data for the embedded default, loaded into an empty database.

Later issues add to this data and never change it: acquirer and terminal
ids, the biller ``UTIL01`` and its accounts are what test clients rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Connection, func, insert, select, update

from hsm_sim.crypto.kcv import kcv_des
from hsm_sim.crypto.lmk import TEST_LMK, encrypt_key
from hsm_sim.crypto.pin_verify import visa_pvv
from hsm_sim.interface import KeyUnderLmk
from switch.cardholder import mask_pan
from switch.ledger import accounts
from switch.ledger import schema as s
from switch.ledger.accounts import ensure_account, ensure_accounts
from switch.ledger.journal import Posting, post_all
from switch.security.keystore import HSM_KEY_TYPES, add_key

ACQUIRERS = [
    {"id": "100001", "name": "Demo Bank", "status": "active"},
    {"id": "200002", "name": "Demo Card Processing Centre", "status": "active"},
]

TERMINALS = (
    [
        {
            "acquirer_id": "100001",
            "terminal_id": f"ATM0000{i}",
            "channel": "ATM",
            "merchant_id": None,
            "status": "active",
        }
        for i in range(1, 6)
    ]
    + [
        {
            "acquirer_id": "100001",
            "terminal_id": f"POS0000{i}",
            "channel": "POS",
            "merchant_id": "AGENT0000000001",
            "status": "active",
        }
        for i in range(1, 6)
    ]
    + [
        {
            "acquirer_id": "200002",
            "terminal_id": "",
            "channel": "HOST",
            "merchant_id": None,
            "status": "active",
        },
    ]
)

# UTIL01's debt-file key pair (issue 12), TEST-ONLY and published in the README beside the
# demo keys, so anyone can sign a test debt list for it (``billswitch debts sign``): the
# private half is the SHA-256 of "billswitch UTIL01 test-only debt-file key".
DEMO_DEBT_KEYS = {
    "UTIL01": (
        "c63e3564e64d593b17a6abfaad6359ecc6d284349ed017bdb682db79de3f8179",  # private
        "74a92ad37386630aa9e98bd57770542e69421dba8cac9fc4e8bfe45e85fd3e35",  # public
    ),
}

BILLERS = [
    {
        "code": "UTIL01",
        "name": "Demo City Utilities",
        "kind": "held",
        "currency": "944",
        "min_amount": 1,
        "max_amount": None,
        "partial_allowed": True,
        "overpay_allowed": False,
        "fee_fixed": 0,
        "settlement_account": "AZ00DEMO00000000000000000001",
        "status": "active",
        "public_key": DEMO_DEBT_KEYS["UTIL01"][1],
    },
]

# Billers of issue 11, added to any demo database that lacks them (``add_demo_billers``).
# MOB01 is outline; TEL01 and PWR01 are online, served by the reference biller server
# (``billswitch biller-sim``) on 8090 with these TEST-ONLY secrets, published like the
# demo keys (README): anyone can sign as these billers.
DEMO_BILLER_SECRETS = {
    "TEL01": b"TEL01-demo-secret-not-for-production",
    "PWR01": b"PWR01-demo-secret-not-for-production",
}
_ONLINE = {"kind": "online", "currency": "944", "fee_fixed": 0, "status": "active"}
MORE_BILLERS = [
    {
        "code": "MOB01",
        "name": "Demo Mobile Top-up",
        "kind": "outline",
        "currency": "944",
        "min_amount": 100,
        "max_amount": 5_000_000,
        "partial_allowed": True,
        "overpay_allowed": True,
        "fee_fixed": 0,
        "settlement_account": "AZ00DEMO00000000000000000002",
        "status": "active",
    },
    {
        **_ONLINE,
        "code": "TEL01",
        "name": "Demo Telecom",
        "min_amount": 1,
        "max_amount": None,
        "partial_allowed": True,
        "overpay_allowed": False,
        "settlement_account": "AZ00DEMO00000000000000000003",
        "url": "http://127.0.0.1:8090/TEL01",
    },
    {
        **_ONLINE,
        "code": "PWR01",
        "name": "Demo Prepaid Power",
        "min_amount": 100,
        "max_amount": 1_000_000,
        "partial_allowed": True,
        "overpay_allowed": True,
        "settlement_account": "AZ00DEMO00000000000000000004",
        "url": "http://127.0.0.1:8090/PWR01",
    },
]

# Fee rules of issue 12, added to any demo database whose biller has none
# (``add_demo_fee_rules``): TEL01 charges the payer 1 % of the amount, at least 50.
DEMO_FEE_RULES = [
    {
        "biller_code": "TEL01",
        "channel": None,
        "acquirer_id": None,
        "fixed": 0,
        "percent_bp": 100,
        "min_fee": 50,
        "max_fee": None,
        "payer": "payer",
    },
]

# Holder names as the biller keeps them (several scripts); the wire carries them
# transliterated and masked.
SURNAMES = [
    "Гильман П.",
    "Məmmədov Ə.",
    "Батбаяр Д.",
    "Smith J.",
    "Əliyeva S.",
    "Иванова Н.",
    "Ганболд Ө.",
    "Hüseynov R.",
    "Brown A.",
    "Дорж Б.",
]

DEBTS = [
    ("1000001", "202611", "7822", 12345),
    ("1000002", "202610", "7823", 500000),
    ("1000002", "202611", "7824", 250000),
]


def is_empty(conn: Connection) -> bool:
    return conn.execute(select(func.count()).select_from(s.acquirers)).scalar_one() == 0


def load_demo(conn: Connection) -> None:
    """Insert the demo data; the caller checks the database is empty."""
    conn.execute(insert(s.acquirers), ACQUIRERS)
    conn.execute(insert(s.terminals), TERMINALS)
    conn.execute(insert(s.billers), BILLERS)
    conn.execute(
        insert(s.customers),
        [
            {"biller_code": "UTIL01", "account": str(acc), "name": SURNAMES[(acc - 1) % 10]}
            for acc in range(1000001, 1000101)
        ],
    )
    conn.execute(
        insert(s.debts),
        [
            {
                "biller_code": "UTIL01",
                "account": acc,
                "period": period,
                "invoice": inv,
                "amount_original": amount,
                "amount_open": amount,
            }
            for acc, period, inv, amount in DEBTS
        ],
    )
    ensure_accounts(conn)


def add_demo_billers(conn: Connection, seal: Callable[[str, bytes], str]) -> list[str]:
    """The demo billers this database lacks (its other data untouched), online secrets
    sealed with ``seal``; returns their codes."""
    have = set(conn.execute(select(s.billers.c.code)).scalars())
    rows = [
        dict(b, secret=seal(b["code"], DEMO_BILLER_SECRETS[b["code"]]))
        if b["code"] in DEMO_BILLER_SECRETS
        else b
        for b in MORE_BILLERS
        if b["code"] not in have
    ]
    for row in rows:
        conn.execute(insert(s.billers).values(**row))
    return [r["code"] for r in rows]


def add_demo_fee_rules(conn: Connection) -> list[str]:
    """The demo fee rules of billers that have no rule of their own yet (any other rule
    untouched); returns the billers they were added for."""
    have = set(conn.execute(select(s.fee_rules.c.biller_code)).scalars())
    billers = set(conn.execute(select(s.billers.c.code)).scalars())
    rows = [
        dict(r, created_at=datetime.now(UTC))
        for r in DEMO_FEE_RULES
        if r["biller_code"] not in have and r["biller_code"] in billers
    ]
    for row in rows:
        conn.execute(insert(s.fee_rules).values(**row))
    return [r["biller_code"] for r in rows]


def add_demo_debt_keys(conn: Connection) -> list[str]:
    """The demo billers' published debt-file keys, where a demo database has none yet
    (one made before issue 12); a key an operator registered is left alone."""
    b = s.billers.c
    added = []
    for code, (_, public) in DEMO_DEBT_KEYS.items():
        done = conn.execute(
            update(s.billers)
            .where(b.code == code, b.public_key.is_(None))
            .values(public_key=public)
        )
        if done.rowcount:
            added.append(code)
    return added


# Payer codes (issue 12): one code for a payer's accounts at several billers (DE 48 PC).
DEMO_PAYER_CODES = {"PC1000001": [("UTIL01", "1000002"), ("TEL01", "5550001")]}


def add_demo_payer_codes(conn: Connection) -> list[str]:
    """The demo payer codes this database lacks (older demo databases included; a code
    an operator made or changed is left alone); returns their codes."""
    have = set(conn.execute(select(s.payer_codes.c.code)).scalars())
    billers = set(conn.execute(select(s.billers.c.code)).scalars())
    added = []
    for code, pairs in DEMO_PAYER_CODES.items():
        if code in have or not billers.issuperset(b for b, _ in pairs):
            continue
        conn.execute(insert(s.payer_codes).values(code=code, created_at=datetime.now(UTC)))
        conn.execute(
            insert(s.payer_accounts),
            [
                {"payer_code": code, "biller_code": b, "account": a, "position": i}
                for i, (b, a) in enumerate(pairs, 1)
            ],
        )
        added.append(code)
    return added


# -- test-only keys (issue 3): published in the README for test clients ------
# Never use these outside a demo: they are public. Stored under the test LMK.
DEMO_KEYS = [
    ("100001:ATM00001", "TPK", "0123456789ABCDEFFEDCBA9876543210"),
    ("100001:ATM00001", "TAK", "FEDCBA98765432100123456789ABCDEF"),
    ("100001:ATM00001", "TMK", "0123456789ABCDEF1032547698BADCFE"),
    ("issuer", "PVK", "1032547698BADCFE0123456789ABCDEF"),
]


def load_demo_keys(conn: Connection) -> None:
    """The demo terminal's keys, encrypted under the test LMK as an HSM would keep them."""

    now = datetime.now(UTC)
    for owner, name, clear_hex in DEMO_KEYS:
        clear = bytes.fromhex(clear_hex)
        value = encrypt_key(TEST_LMK, HSM_KEY_TYPES[name], clear, "U")
        add_key(
            conn,
            owner,
            name,
            KeyUnderLmk(HSM_KEY_TYPES[name], value, kcv_des(clear)[:3].hex().upper()),
            now,
        )


def needs_demo_keys(conn: Connection) -> bool:
    return conn.execute(select(func.count()).select_from(s.keys)).scalar_one() == 0


# The on-us wallet card (test-only): PAN and PIN are published in the README.
DEMO_CARD_PAN = "9990001000000001"
DEMO_CARD_PIN = "1234"
DEMO_WALLET_FUNDS = 1_000_000


def needs_demo_card(conn: Connection) -> bool:
    return conn.execute(select(func.count()).select_from(s.cards)).scalar_one() == 0


def load_demo_card(conn: Connection, pan_hash: str) -> None:
    """The card's PVV (made with the demo PVK, as card issuance would), its wallet, funds."""

    pvk = bytes.fromhex(next(k for o, n, k in DEMO_KEYS if n == "PVK"))
    wallet = accounts.wallet(pan_hash)
    ensure_account(conn, wallet, "wallet", "issuer", "944")
    ensure_account(conn, "FUNDING:944", "wallet_funding", "issuer", "944")
    conn.execute(
        insert(s.cards),
        [
            {
                "pan_hash": pan_hash,
                "masked_pan": mask_pan(DEMO_CARD_PAN),
                "pvki": "1",
                "pvv": visa_pvv(pvk, DEMO_CARD_PAN, "1", DEMO_CARD_PIN),
                "wallet_account": wallet,
                "currency": "944",
                "status": "active",
                "funds": DEMO_WALLET_FUNDS,
            }
        ],
    )
    conn.execute(insert(s.pin_tries), [{"pan_hash": pan_hash, "tries": 0, "pending": 0}])
    legs = (("FUNDING:944", DEMO_WALLET_FUNDS), (wallet, -DEMO_WALLET_FUNDS))
    post_all(conn, [Posting("funding", None, None, "944", date.today(), legs)], datetime.now(UTC))


def material_present(conn: Connection, card_pan_hash: str) -> list[str]:
    """The published demo material in this database: active keys with the demo check
    values, and the demo card. Any of it lets anyone pay; a start with it warns."""
    k = s.keys.c
    found = []
    kcvs = {(owner, name): _demo_kcv(clear) for owner, name, clear in DEMO_KEYS}
    rows = conn.execute(select(k.owner, k.key_type, k.kcv).where(k.state != "retired")).all()
    for owner, name, kcv in rows:
        if kcvs.get((owner, name)) == kcv:
            found.append(f"{owner} {name} (published key)")
    c = s.cards.c
    if conn.execute(select(c.pan_hash).where(c.pan_hash == card_pan_hash)).first():
        found.append(f"card {mask_pan(DEMO_CARD_PAN)} (published PIN)")
    b = s.billers.c
    published = {public for _, public in DEMO_DEBT_KEYS.values()}
    for code, key in conn.execute(select(b.code, b.public_key).where(b.public_key.isnot(None))):
        if key in published:
            found.append(f"biller {code} (published debt-file key)")
    return found


def published_secrets(conn: Connection, open_: Callable[[str, str], bytes]) -> list[str]:
    """The demo billers whose stored secret is still the published one."""
    b = s.billers.c
    rows = conn.execute(select(b.code, b.secret).where(b.code.in_(DEMO_BILLER_SECRETS))).all()
    found = []
    for code, sealed in rows:
        try:
            published = sealed and open_(code, sealed) == DEMO_BILLER_SECRETS[code]
        except Exception:  # another hash.key: not the published secret as far as we can tell
            published = False
        if published:
            found.append(f"biller {code} (published secret)")
    return found


def _demo_kcv(clear_hex: str) -> str:
    return kcv_des(bytes.fromhex(clear_hex))[:3].hex().upper()
