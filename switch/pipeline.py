"""The pipeline: runs a request through its flow's steps and always returns a response.

A step returns ``None`` to go on or a response to finish; a ``Decline``
ends the flow with its response code, unless the request is a money message
the switch answered before (``switch/steps/repeats.py``): that gets its stored
answer instead. Anything unexpected is logged and answered with 96: the
writer guarantees nothing half-written remains.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from twisted.internet.defer import Deferred, succeed

from hsm_sim.interface import HsmFailure
from iso.dialect import Encoded, encode_message
from iso.errors import IsoFormatError
from routing.billers import BillerError
from switch import metrics
from switch.errors import Decline, FormatError, NotSupported
from switch.flows import ACCOUNT_TYPES, BY_PROCESSING_CODE, FLOWS, Flow
from switch.security import mac
from switch.services import Services
from switch.steps import repeats
from switch.transaction import Origin, Transaction

log = structlog.get_logger("switch.txn")


class Pipeline:
    def __init__(self, services: Services, clock: Callable[[], datetime] | None = None) -> None:
        self._sv = services
        self._clock = clock or (lambda: datetime.now(UTC))

    def handle(
        self, request: dict[str, str], origin: Origin, raw: bytes = b""
    ) -> Deferred[dict[str, str] | Encoded | None]:
        """Entry point for channels: a decoded request in, response fields out.

        A MACed response comes with its bytes (``Encoded``): it was encoded to be
        MACed. A message that is itself a response (odd third MTI digit) gets none.
        """
        mti = request.get("t", "")
        if int(mti[2]) % 2:
            log.warning("unexpected response message ignored", mti=mti, channel=origin.channel)
            return succeed(None)
        return Deferred.fromCoroutine(self.process(request, origin, raw))

    def malformed(self, partial: dict[str, str], field: str | None, origin: Origin) -> dict | None:
        """A 30 for a request that did not decode, if its MTI was readable; else None."""
        mti = partial.get("t", "")
        if not (len(mti) == 4 and mti.isdigit() and (mti[:2] + "00") in _REQUEST_CLASSES):
            return None
        if int(mti[2]) % 2:  # a malformed response is not answered either
            return None
        # The faulty field is never echoed, nor anything else that would not encode.
        readable = {k: v for k, v in partial.items() if k != field}
        t = Transaction(readable, origin, self._clock())
        self._log(t, "30", reason=f"DE {field} malformed" if field else "undecodable")
        return _encodable(t.response("30", {}))

    async def process(
        self, request: dict[str, str], origin: Origin, raw: bytes = b""
    ) -> dict[str, str] | Encoded:
        t = Transaction(request, origin, self._clock(), raw)
        try:
            response = await self._run(t)
            self._log(t, response.get("39", ""))
        except Exception as exc:
            response = await self._failed(t, exc)
        signed = await self._signed(t, response)
        metrics.LATENCY.labels(t.origin.channel).observe(
            (self._clock() - t.received_at).total_seconds()
        )
        return signed

    async def _failed(self, t: Transaction, exc: Exception) -> dict[str, str]:
        """The answer to a request a step did not approve: a money message answered before
        gets that answer (or 94) instead of the decline; anything else its decline code."""
        code, reason = _declined(t, exc)
        stored = await repeats.instead_of_decline(t, self._sv, code)
        if stored is not None:
            self._log(t, stored.get("39", ""), reason=f"answered before; not {code}: {reason}")
            return stored
        self._log(t, code, reason=reason)
        return t.response(code, {})

    async def _signed(self, t: Transaction, response: dict[str, str]) -> dict[str, str] | Encoded:
        """MAC the response; if the HSM cannot, it goes unsigned (the answer stands)."""
        try:
            return await mac.sign(t, self._sv, response)
        except Exception as exc:
            log.error("response MAC failed", mti=t.mti, error=type(exc).__name__)
            return response

    async def _run(self, t: Transaction) -> dict[str, str]:
        flow = self._flow(t)
        for de in flow.mandatory + (() if t.origin.kind == "HOST" else ("41",)):
            t.field(de)
        for step in flow.steps:
            response = await step(t, self._sv)
            if response is not None:
                return response
        raise RuntimeError(f"flow for {t.mti} ended without a response")

    @staticmethod
    def _flow(t: Transaction) -> Flow:
        processing = None
        if t.mti in BY_PROCESSING_CODE:
            code = t.field("3")
            if len(code) != 6 or not code.isdigit():
                raise FormatError("3")
            if code[2:4] not in ACCOUNT_TYPES:
                raise NotSupported("account type not supported")
            if code[4:] != "00":  # 31xx00 or 50xx00: bill payments have no to-account
                raise NotSupported("to-account type not supported")
            processing = code[:2]
        flow = FLOWS.get((t.mti, processing))
        if flow is None:
            raise NotSupported("message type or processing code not supported")
        return flow

    @staticmethod
    def _log(t: Transaction, code: str, **extra: str) -> None:
        metrics.TRANSACTIONS.labels(t.origin.channel, t.mti, code).inc()
        log.info(
            "txn",
            channel=t.origin.channel,
            mti=t.mti,
            stan=t.request.get("11"),
            acquirer=t.request.get("32"),
            terminal=t.request.get("41"),
            code=code,
            **extra,
        )


def _declined(t: Transaction, exc: Exception) -> tuple[str, str]:
    """A failure's response code and the reason logged with it."""
    if isinstance(exc, Decline):
        if exc.alert:  # the switch's own configuration: an operator must act
            log.error("operator action needed", code=exc.code, reason=str(exc), **_who(t))
        return exc.code, str(exc)
    if isinstance(exc, BillerError):  # a biller's refusal or trouble: its own code
        return exc.code, f"biller: {type(exc).__name__}: {exc}"
    if isinstance(exc, HsmFailure):  # timeout, unreachable, or an HSM error code
        return "96", f"HSM: {type(exc).__name__}"
    log.error("transaction failed", mti=t.mti, stan=t.request.get("11"), exc_info=exc)
    return "96", "unexpected error"


def _who(t: Transaction) -> dict[str, str | None]:
    return {"acquirer": t.request.get("32"), "terminal": t.request.get("41")}


_REQUEST_CLASSES = frozenset({"0100", "0200", "0400", "0500", "0800"})


def _encodable(fields: dict[str, str]) -> dict[str, str] | None:
    """``fields`` without the echoed values the dialect refuses; None if MTI or DE 39 is bad."""
    fields = dict(fields)
    for _ in range(len(fields)):
        try:
            encode_message(fields)
            return fields
        except IsoFormatError as exc:
            if exc.field in (None, "t", "39") or exc.field not in fields:
                return None
            del fields[exc.field]
    return None
