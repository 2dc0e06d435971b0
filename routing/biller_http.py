"""Signed HTTP exchanges with one online biller, on the reactor.

One ``BillerLine`` per biller: a twisted.web ``Agent`` over its own persistent
connection pool (no thread per call, connections reused between calls). Every
request is signed and every answer's signature checked (``routing.signing``).

It knows HTTP, not the biller API: an exchange ends in an ``Answer`` (status,
body, whether the biller's signature on it held) or in one of two transport
failures, told apart because they mean opposite things for money:

- ``NotSent``: the request never reached the biller (connection refused, no
  such host, connect time-out): the biller cannot have acted on it.
- ``Lost``: the request was written and no complete answer came (time-out while
  waiting, connection closed, a body cut short, an answer that is not HTTP): the
  biller may have acted on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twisted.internet import error as net_errors
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from routing import signing
from routing.billers import Endpoint

MAX_ANSWER = 64 * 1024  # bytes: a biller's answers are small JSON; more is broken or hostile
IDLE_TIMEOUT = 30.0  # seconds an idle connection is kept (well under common server keep-alives)

# Failures that happen before any byte of the request left: connecting did not succeed.
_NOT_SENT = (
    net_errors.ConnectError,  # refused, timed out, no route, ...
    net_errors.DNSLookupError,
    net_errors.ConnectingCancelledError,  # our time limit ran out while connecting
    RequestTransmissionFailed,  # the request could not be written whole
)


class NotSent(Exception):
    """The request never reached the biller."""


class Lost(Exception):
    """The request went out and no complete answer came back."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    signed: bool  # X-Timestamp / X-Signature present, fresh and right over the body


class BillerLine:
    """Signed requests to one biller over a persistent connection pool."""

    def __init__(
        self,
        reactor: Any,
        endpoint: Endpoint,
        now: Callable[[], datetime],
        idle_timeout: float = IDLE_TIMEOUT,
        persistent: bool = True,
    ) -> None:
        """``persistent=False`` opens a connection per call (only to measure what reuse saves)."""
        self.endpoint = endpoint
        self._reactor = reactor
        self._now = now
        self._base = endpoint.url.rstrip("/").encode("ascii")
        self._stamp_second, self._stamp_text = -1, ""
        self._pool = HTTPConnectionPool(reactor, persistent=persistent)
        self._pool.maxPersistentPerHost = endpoint.max_in_flight
        self._pool.cachedConnectionTimeout = idle_timeout
        factory = _Endpoints(reactor, endpoint.timeout)
        self._agent = Agent.usingEndpointFactory(reactor, factory, pool=self._pool)

    def exchange(self, method: bytes, path: str, body: bytes = b"") -> Deferred[Answer]:
        """Send one signed request; its answer, or ``NotSent`` / ``Lost``.

        The time limit covers connecting, sending and reading the whole answer;
        when it runs out the request is cancelled and its connection dropped.
        """
        stamp = self._stamp()
        signature = signing.sign(self.endpoint.secret, stamp, body)
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"X-Timestamp": [stamp.encode("ascii")],
                b"X-Signature": [signature.encode("ascii")],
            }
        )
        producer = _Body(body) if method != b"GET" else None
        d = self._agent.request(method, self._base + path.encode("ascii"), headers, producer)
        d.addCallback(self._read)
        timer = self._reactor.callLater(self.endpoint.timeout, d.cancel)
        d.addBoth(_stop_timer, timer)
        d.addErrback(_transport_failure)
        return d

    def _stamp(self) -> str:
        """``X-Timestamp`` for now: formatted once a second, not once a call."""
        now = self._now()
        second = int(now.timestamp())
        if second != self._stamp_second:
            self._stamp_second, self._stamp_text = second, signing.timestamp(now)
        return self._stamp_text

    def close(self) -> Deferred[None]:
        """Close the idle connections (calls in flight end by their time limit)."""
        return self._pool.closeCachedConnections()

    def _read(self, response: IResponse) -> Deferred[Answer]:
        collected: Deferred[bytes] = Deferred(_abort_reading)
        response.deliverBody(_Collect(collected))
        return collected.addCallback(self._answer, response)

    def _answer(self, body: bytes, response: IResponse) -> Answer:
        stamp = _header(response.headers, b"X-Timestamp")
        signature = _header(response.headers, b"X-Signature")
        signed = signing.verify(self.endpoint.secret, stamp, body, signature, self._now())
        return Answer(response.code, body, signed)


def _stop_timer(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _transport_failure(failure: Failure) -> Failure:
    if failure.check(*_NOT_SENT):
        raise NotSent(_reason(failure)) from None
    raise Lost(_reason(failure)) from None


def _reason(failure: Failure) -> str:
    """A short description of a transport failure (twisted.web wraps the real ones)."""
    value = failure.value
    inner = getattr(value, "reasons", None)  # ResponseFailed, ResponseNeverReceived, ...
    if inner:
        value = inner[0].value
    if isinstance(value, CancelledError):
        return "timed out"
    return f"{type(value).__name__}: {value}"[:200]


def _header(headers: Headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    if not values:
        return None
    try:
        return values[0].decode("ascii")
    except UnicodeDecodeError:
        return None


def _abort_reading(collected: Deferred[bytes]) -> None:
    """Cancelling while reading the body: the collector's canceller drops the connection."""
    collector = getattr(collected, "collector", None)
    if collector is not None:
        collector.abort()


class _Collect(Protocol):
    """Reads an answer's body, at most ``MAX_ANSWER`` bytes of it."""

    def __init__(self, done: Deferred[bytes]) -> None:
        self._done = done
        self._parts: list[bytes] = []
        self._size = 0
        done.collector = self  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self._size > MAX_ANSWER:
            return  # already too long: the connection is going
        self._size += len(data)
        self._parts.append(data)
        if self._size > MAX_ANSWER:
            self._parts.clear()
            self.abort()

    def abort(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        elif self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._done.called:
            return
        if reason is not None and reason.check(ResponseDone) and self._size <= MAX_ANSWER:
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason or Failure(Lost("answer ended without a reason")))


@implementer(IBodyProducer)
class _Body:
    """A request body written at once (no cooperator, no extra reactor turn)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """Where the Agent connects: an IP literal directly (no resolver thread), a name
    through ``HostnameEndpoint``; https wrapped in TLS with the usual host checks."""

    def __init__(self, reactor: Any, timeout: float) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: URI) -> Any:
        host = uri.host.decode("ascii")
        endpoint: Any
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        else:
            endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port, self._timeout)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint
