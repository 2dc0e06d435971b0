"""The billers this server plays: their secrets, amount rules and demo accounts, as data.

Two kinds of biller, told apart by fields, not code paths: a biller with
``open_accounts`` (PWR01, prepaid electricity) knows every account and takes any
amount within its limits; one without (TEL01, phone bills) knows only its
accounts and takes at most what an account owes (partial payment allowed).
The secrets are TEST-ONLY constants, printed in the README like the demo keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from routing.biller_sim.errors import AccountClosed, AmountNotAccepted


@dataclass(frozen=True)
class Account:
    """One account's bill as the biller holds it."""

    account: str
    name: str
    amount_due: int
    period: str = ""
    invoice: str = ""
    due_date: str = ""
    closed: bool = False


@dataclass(frozen=True)
class Biller:
    """One biller's rules; ``secret`` signs requests and answers (routing.signing)."""

    code: str
    secret: bytes
    currency: str
    open_accounts: bool  # any account exists (prepaid); otherwise only the stored ones
    min_amount: int = 1
    max_amount: int | None = None
    up_to_due: bool = True  # at most the amount due (partial allowed, no overpayment)
    receipt: bool = False  # every accepted payment carries a VAT receipt id
    token: bool = False  # every accepted payment carries a 20-digit prepaid meter token

    def check_amount(self, amount: int, currency: str, account: Account | None) -> None:
        """Refuse a payment the biller's rules do not allow (422)."""
        if account is not None and account.closed:
            raise AccountClosed(f"account {account.account} is closed")
        if currency != self.currency:
            raise AmountNotAccepted(f"currency {currency} is not {self.code}'s {self.currency}")
        if amount < self.min_amount or (self.max_amount is not None and amount > self.max_amount):
            raise AmountNotAccepted(f"amount {amount} is outside {self._limits()}")
        if self.up_to_due and account is not None and amount > account.amount_due:
            raise AmountNotAccepted(f"amount {amount} is more than the {account.amount_due} due")

    def blank_account(self, account: str) -> Account:
        """What an open-accounts biller answers for an account it has no row of."""
        return Account(account=account, name="PREPAID METER", amount_due=0)

    def extras(self, seq: int, payment_id: str) -> dict[str, str]:
        """The ``receipt`` and ``token`` of an accepted payment, as this biller issues them."""
        made = {}
        if self.receipt:
            made["receipt"] = f"VAT{seq:012d}"
        if self.token:
            made["token"] = meter_token(self.code, payment_id)
        return made

    def _limits(self) -> str:
        top = "" if self.max_amount is None else str(self.max_amount)
        return f"{self.min_amount}..{top}"


def meter_token(code: str, payment_id: str) -> str:
    """A 20-digit prepaid token, the same for the same payment (so a repeat answers alike)."""
    digest = hashlib.sha256(f"{code}:{payment_id}".encode()).digest()
    return str(int.from_bytes(digest[:16], "big") % 10**20).zfill(20)


TEL01 = Biller(
    code="TEL01",
    secret=b"TEL01-demo-secret-not-for-production",
    currency="944",
    open_accounts=False,
    receipt=True,
)
PWR01 = Biller(
    code="PWR01",
    secret=b"PWR01-demo-secret-not-for-production",
    currency="944",
    open_accounts=True,
    min_amount=100,
    max_amount=1_000_000,
    up_to_due=False,
    token=True,
)
BILLERS: dict[str, Biller] = {b.code: b for b in (TEL01, PWR01)}


def _tel01_account(number: int) -> Account:
    account = str(number)
    owed = DEMO_DEBTS.get(account, 0)
    return Account(
        account=account,
        name=DEMO_NAMES.get(account, f"SUBSCRIBER {account}"),
        amount_due=owed,
        period="202611",
        invoice=f"T{account}-202611",
        due_date="2026-12-15",
        closed=account in DEMO_CLOSED,
    )


# TEL01's demo accounts 5550001..5550100: two named debts, 5550003..5550050 owe 2500,
# 5550051..5550099 owe nothing, 5550100 is closed (for account_closed).
DEMO_DEBTS = {"5550001": 8800, "5550002": 150000} | {str(n): 2500 for n in range(5550003, 5550051)}
DEMO_NAMES = {"5550001": "KAPLAN M.", "5550002": "TURAN S."}
DEMO_CLOSED = frozenset({"5550100"})
DEMO_ACCOUNTS: dict[str, tuple[Account, ...]] = {
    "TEL01": tuple(_tel01_account(n) for n in range(5550001, 5550101)),
    "PWR01": (),
}
