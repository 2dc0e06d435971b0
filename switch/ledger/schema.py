"""The database schema, as SQLAlchemy Core tables.

One schema serves SQLite (embedded default) and PostgreSQL. Money is always an
integer of minor units. The Alembic migrations in ``switch/migrations`` create
exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

acquirers = Table(
    "acquirers",
    metadata,
    Column("id", String(11), primary_key=True, comment="DE 32 acquiring institution id"),
    Column("name", String(100), nullable=False),
    Column("status", String(10), nullable=False, default="active"),
)

terminals = Table(
    "terminals",
    metadata,
    Column("acquirer_id", String(11), ForeignKey("acquirers.id"), primary_key=True),
    Column("terminal_id", String(8), primary_key=True, comment="DE 41; '' for a host link"),
    Column("channel", String(8), nullable=False, comment="ATM, POS or HOST"),
    Column("merchant_id", String(15)),
    Column("status", String(10), nullable=False, default="active"),
)

billers = Table(
    "billers",
    metadata,
    Column("code", String(8), primary_key=True, comment="DE 48 BL"),
    Column("name", String(100), nullable=False),
    Column("kind", String(10), nullable=False, comment="held, online, offline, outline"),
    Column("currency", String(3), nullable=False),
    Column("min_amount", BigInteger, nullable=False, default=1),
    Column("max_amount", BigInteger),
    Column("partial_allowed", Boolean, nullable=False, default=True),
    Column("overpay_allowed", Boolean, nullable=False, default=False),
    # Superseded by fee_rules (migration 0014 made a rule of each one set); not read.
    Column("fee_fixed", BigInteger, nullable=False, default=0),
    Column("settlement_account", String(34)),
    Column("status", String(10), nullable=False, default="active"),
    # Online billers (kind "online") only: how the switch reaches their API (billers.md).
    Column("url", String(200), comment="online: base URL of the biller's API"),
    Column(
        "secret",
        String(200),
        comment="online: HMAC secret, sealed (AES-GCM under a key from hash.key)",
    ),
    Column("timeout_ms", Integer, nullable=False, server_default="3000"),
    Column("max_in_flight", Integer, nullable=False, server_default="64"),
    # Held billers' debt files (migration 0012): whose signature a debt list must carry.
    Column("public_key", String(64), comment="held: Ed25519 public key of its debt files, hex"),
)

customers = Table(
    "customers",
    metadata,
    Column("biller_code", String(8), ForeignKey("billers.code"), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
)

debts = Table(
    "debts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("biller_code", String(8), nullable=False),
    Column("account", String(32), nullable=False),
    Column("period", String(6), nullable=False),
    Column("invoice", String(32)),
    Column("amount_original", BigInteger, nullable=False),
    Column("amount_open", BigInteger, nullable=False),
    Column("due", Date, comment="due date, as the biller's debt file gives it"),
    UniqueConstraint("biller_code", "account", "period", name="uq_debts_period"),
)
Index("ix_debts_account", debts.c.biller_code, debts.c.account)

accounts = Table(
    "accounts",
    metadata,
    Column("code", String(40), primary_key=True, comment="e.g. ACQ:100001:RECV"),
    Column("kind", String(20), nullable=False),
    Column("owner", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("acquirer_id", String(11), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("stan", String(6), nullable=False),
    Column("transmitted", String(10), nullable=False),
    Column("mti", String(4), nullable=False, comment="base MTI (a repeat counts as its original)"),
    Column("request_hash", String(64), nullable=False),
    Column("response_code", String(2), nullable=False),
    Column("response", Text, nullable=False, comment="JSON of the response data elements"),
    Column("payment_id", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # STAN and transmission time lead: they are what a batch looks keys up by.
    UniqueConstraint(
        "stan", "transmitted", "acquirer_id", "terminal_id", "mti", name="uq_requests_key"
    ),
)
# The retention purge finds old rows by time (migration 0007; switch/ledger/retention.py).
Index("ix_requests_created_at", requests.c.created_at)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("acquirer_id", String(11), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("biller_code", String(8), nullable=False),
    Column("account", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False, default=0),
    Column(
        "fee_payer",
        String(6),
        nullable=False,
        default="payer",
        server_default="payer",
        comment="who pays the fee: payer (on top, DE 28) or biller (from its payable)",
    ),
    Column("reversed_amount", BigInteger, nullable=False, default=0),
    Column("currency", String(3), nullable=False),
    Column("advice", Boolean, nullable=False, default=False),
    Column("rrn", String(12)),
    Column("auth_code", String(6), nullable=False),
    Column("masked_pan", String(19)),
    Column("pan_hash", String(64), comment="keyed hash (HMAC-SHA256) of the PAN, for search"),
    Column("business_day", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Online billers (migration 0010): what the biller said when it accepted the payment.
    Column(
        "biller_payment_id",
        String(64),
        comment="online: the payment's idempotency key at the biller",
    ),
    Column("biller_ref", String(64), comment="online: the biller's reference of the payment"),
    Column("receipt", String(64), comment="online: the biller's fiscal/VAT receipt id (DE 48 VR)"),
    Column("token", String(64), comment="online: the prepaid token the biller vended (DE 48 TK)"),
    # Payer-code splits (migration 0016): the head payment (what the acquirer paid) and
    # one part per biller account paid (what each biller is owed) carry the head's id.
    Column(
        "split_of",
        Integer,
        comment="payer-code split: the head payment's id (on the head and its parts)",
    ),
)
Index("ix_payments_biller_day", payments.c.biller_code, payments.c.business_day)
# A settle row asks whether its payment was posted (switch/ledger/online.py, migration 0010).
Index("ix_payments_biller_payment_id", payments.c.biller_payment_id)
Index("ix_payments_split_of", payments.c.split_of)

allocations = Table(
    "allocations",
    metadata,
    Column("payment_id", Integer, ForeignKey("payments.id"), primary_key=True),
    Column("debt_id", Integer, ForeignKey("debts.id"), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("reversed_amount", BigInteger, nullable=False, default=0),
)

journal = Table(
    "journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False, comment="payment, reversal, fee, settlement"),
    Column("payment_id", Integer, ForeignKey("payments.id")),
    Column("acquirer_id", String(11)),
    Column("amount", BigInteger, nullable=False, comment="the movement, always positive"),
    Column("currency", String(3), nullable=False),
    Column("business_day", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_journal_acquirer_day", journal.c.acquirer_id, journal.c.business_day)
Index("ix_journal_payment", journal.c.payment_id)
# A day's reversals, for its payment files (migration 0013, switch/ledger/day_payments.py):
# partial, so the payments' own journal rows (nearly all of them) cost it nothing.
_REVERSAL = journal.c.kind == "reversal"
Index(
    "ix_journal_reversal_day",
    journal.c.business_day,
    postgresql_where=_REVERSAL,
    sqlite_where=_REVERSAL,
)
# Settling a day reads every journal row of the day, whatever its acquirer (migration 0014).
Index("ix_journal_day", journal.c.business_day)

entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("journal_id", Integer, ForeignKey("journal.id"), nullable=False),
    Column("account_code", String(40), ForeignKey("accounts.code"), nullable=False),
    Column("amount", BigInteger, nullable=False, comment="signed: debit > 0, credit < 0"),
)
Index("ix_entries_journal", entries.c.journal_id)
Index("ix_entries_account", entries.c.account_code)

business_days = Table(
    "business_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("state", String(8), nullable=False, default="open"),
    Column("closed_at", DateTime(timezone=True)),
)

# -- keys and on-us cards (migration 0002) ----------------------------------

keys = Table(
    "keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(24), nullable=False, comment="acquirer:terminal, acquirer: or issuer"),
    Column("key_type", String(4), nullable=False, comment="TMK TPK TAK ZMK ZPK ZAK PVK CVK"),
    Column("value", String(64), nullable=False, comment="under the LMK, scheme-prefixed"),
    Column("kcv", String(6), nullable=False),
    Column("state", String(10), nullable=False, comment="active, retiring, retired"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retire_at", DateTime(timezone=True), comment="end of a retiring key's grace"),
)
Index("ix_keys_owner", keys.c.owner, keys.c.key_type, keys.c.state)

cards = Table(
    "cards",
    metadata,
    Column("pan_hash", String(64), primary_key=True, comment="keyed hash of the PAN"),
    Column("masked_pan", String(19), nullable=False),
    Column("pvki", String(1), nullable=False),
    Column("pvv", String(4), nullable=False),
    Column("wallet_account", String(40), ForeignKey("accounts.code"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(10), nullable=False, default="active"),
    Column(
        "funds",
        BigInteger,
        nullable=False,
        default=0,
        server_default="0",
        comment="what the wallet holds: always minus the sum of its entries",
    ),
)

# -- PIN tries (migration 0011): a table of their own ----------------------
# Apart from the card row, which the ledger locks to pay from the wallet: reserving
# a try must not wait for a ledger batch's commit, nor a ledger batch for a
# reservation's (switch/security/tries.py).

pin_tries = Table(
    "pin_tries",
    metadata,
    Column("pan_hash", String(64), ForeignKey("cards.pan_hash"), primary_key=True),
    Column("tries", Integer, nullable=False, default=0, server_default="0", comment="wrong PINs"),
    Column(
        "pending",
        Integer,
        nullable=False,
        default=0,
        server_default="0",
        comment="PIN tries reserved, their verification not yet decided",
    ),
    Column(
        "pending_until",
        BigInteger,
        nullable=False,
        default=0,
        server_default="0",
        comment="unix time after which the reserved tries are taken as lost (a crash)",
    ),
)

# -- sign-on state shared by nodes and worker processes (migration 0005) -----

sign_ons = Table(
    "sign_ons",
    metadata,
    Column("acquirer_id", String(11), primary_key=True),
    Column("terminal_id", String(8), primary_key=True, comment="DE 41; '' for a host link"),
    Column("signed_on_at", DateTime(timezone=True), nullable=False),
)

# -- one row per financial transaction identity (migration 0006) --------------

transactions = Table(
    "transactions",
    metadata,
    # The request space's identity (spec section 5): DE 32 + 41 + 11 + 7, without the MTI,
    # so a 0200, its 0220 and the original a reversal names share one row.
    Column("stan", String(6), primary_key=True),
    Column("transmitted", String(10), primary_key=True),
    Column("acquirer_id", String(11), primary_key=True),
    Column("terminal_id", String(8), primary_key=True, comment="DE 41; '' for a host link"),
    Column("state", String(16), nullable=False, comment="paid, or reversed_first (tombstone)"),
    Column("payment_id", Integer, comment="the payment of a paid transaction"),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="for the purge by age"),
)
Index("ix_transactions_created_at", transactions.c.created_at)

# -- store and forward to billers (migration 0008) ----------------------------

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("biller_code", String(8), nullable=False),
    Column("action", String(8), nullable=False, comment="pay, reverse or settle"),
    Column("payment_id", String(64), nullable=False, comment="the biller-side idempotency key"),
    Column("body", Text, nullable=False, comment="JSON: what pay rebuilds its request from"),
    Column("state", String(8), nullable=False, comment="pending, done or parked"),
    Column("attempts", Integer, nullable=False, comment="deliveries started; the claim's token"),
    Column("next_at", DateTime(timezone=True), nullable=False, comment="due (or lease end)"),
    Column("claimed_until", DateTime(timezone=True), comment="a delivery's lease, while claimed"),
    Column("last_error", String(200), comment="why the last attempt failed or the row parked"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Enqueuing the same action for the same payment twice (a repeated advice) adds nothing.
    UniqueConstraint("action", "payment_id", name="uq_outbox_action_payment"),
)
Index("ix_outbox_due", outbox.c.state, outbox.c.next_at)

# -- debt files applied (migration 0012) ---------------------------------------

debt_files = Table(
    "debt_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("biller_code", String(8), nullable=False),
    # The same bytes again are recognised by their digest and change nothing.
    Column("digest", String(64), nullable=False, comment="SHA-256 of the file's bytes, hex"),
    Column("mode", String(5), nullable=False, comment="full or delta"),
    Column("generated", DateTime(timezone=True), nullable=False, comment="the file's own time"),
    Column("debts", BigInteger, nullable=False, comment="debt lines in the file"),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("digest", name="uq_debt_files_digest"),
)
Index("ix_debt_files_biller", debt_files.c.biller_code, debt_files.c.generated)

# -- settlement of closed business days (migration 0014) --------------------------
# One row per business day: inserted under its primary key by the node that settles the
# day, so one node does it however many run (switch/ledger/settlement.py).

settlements = Table(
    "settlements",
    metadata,
    Column("business_day", Date, primary_key=True),
    Column(
        "state",
        String(8),
        nullable=False,
        comment="claimed (nothing moved yet), posted (transfer made, tasks due) or done",
    ),
    Column("claim", String(32), comment="token of the run that holds the day, while held"),
    Column("claimed_until", DateTime(timezone=True), comment="end of that run's lease"),
    Column("node", String(100), comment="who holds (or last held) the day: host:pid"),
    Column("report", Text, comment="JSON: the report's lines, fixed at the transfer"),
    Column("last_error", String(200), comment="why the last run did not finish"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# -- fee rules (migration 0015): reference data, switch/ledger/fees.py ---------

fee_rules = Table(
    "fee_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("biller_code", String(8), comment="NULL: any biller"),
    Column("channel", String(8), comment="ATM, POS or HOST; NULL: any channel"),
    Column("acquirer_id", String(11), comment="DE 32; NULL: any acquirer"),
    Column("fixed", BigInteger, nullable=False, default=0, comment="minor units"),
    Column(
        "percent_bp",
        Integer,
        nullable=False,
        default=0,
        comment="basis points of the amount (100 = 1 %), rounded half up",
    ),
    Column("min_fee", BigInteger, nullable=False, default=0, comment="minor units"),
    Column("max_fee", BigInteger, comment="minor units; NULL: no maximum"),
    Column("payer", String(6), nullable=False, comment="payer (on top) or biller (deducted)"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# -- payer codes (migration 0016) ---------------------------------------------

payer_codes = Table(
    "payer_codes",
    metadata,
    Column("code", String(32), primary_key=True, comment="DE 48 PC"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

payer_accounts = Table(
    "payer_accounts",
    metadata,
    Column("payer_code", String(32), ForeignKey("payer_codes.code"), primary_key=True),
    Column("biller_code", String(8), ForeignKey("billers.code"), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column(
        "position",
        Integer,
        nullable=False,
        comment="order added; an online part's payment id at its biller ends with it",
    ),
)
