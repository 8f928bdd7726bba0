"""Delivery workers: claim due jobs from PostgreSQL and send them as signed webhooks.

Each worker takes one job at a time under a lease, asks the endpoint's shared breaker,
reserves a slot of the global rate limit (waiting, never dropping), makes sure its lease
still covers a whole attempt, sends one HTTP attempt (httpx, total timeout per attempt), and
records the result in one transaction. A slow or dead endpoint holds at most
``endpoint_concurrency`` workers of a process, so deliveries to other endpoints keep flowing.

Every attempt ends as a recorded attempt, whatever the endpoint answers or raises: a
request that cannot be made, or a bug, is recorded and retried with backoff into the DLQ
like any failure, never left to come back after every lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import socket
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from services.actions import policy as pol
from services.actions.ports import DELIVERED, FAILED, PENDING, Attempt, Job, JobQueue, Outcome
from services.actions.rules import (
    NO_ALLOW_LIST,
    AllowList,
    forbidden_address,
    mask_url,
    refuse_literal,
)
from services.actions.signing import signature_headers
from services.core.aio import wait_event
from services.core.clock import Clock
from services.core.errors import InvalidInput, Unavailable
from services.infra import logs, metrics

log = logging.getLogger(__name__)

USER_AGENT = "Cornjacket-Webhooks/1"
# At most this much of a response body is read (a hostile endpoint may stream gigabytes)...
BODY_READ_LIMIT = 4096
# ...and at most this many characters of it, cleaned, are kept in the attempt's error.
ERROR_EXCERPT_CHARS = 200
# DNS resolution by the address guard before an attempt; it holds the job's lease.
DNS_TIMEOUT = 5.0
# When the send starts, the lease must still cover the whole attempt plus this much, for
# recording its result; otherwise it is extended first (owner-checked).
RECORD_SLACK = 5.0


def clean_text(text: str, limit: int = ERROR_EXCERPT_CHARS) -> str:
    """``text`` fit for an error column and a log line: control and format characters
    (NUL, escapes, CR/LF, bidi overrides) become spaces, runs of spaces one, at most
    ``limit`` characters."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text[: limit * 4])
    return " ".join(cleaned.split())[:limit]


def response_excerpt(raw: bytes | bytearray) -> str:
    """A short, clean excerpt of a response body (any bytes, any encoding)."""
    return clean_text(raw[:BODY_READ_LIMIT].decode("utf-8", "replace"))


def _failure_kind(e: Exception) -> str:
    if isinstance(e, TimeoutError | httpx.TimeoutException):
        return pol.TIMEOUT
    # What httpx refuses to send: a header value it cannot encode, a host it cannot parse.
    if isinstance(e, httpx.InvalidURL | httpx.LocalProtocolError | UnicodeError | ValueError):
        return pol.INVALID_REQUEST
    if isinstance(e, httpx.HTTPError | OSError):
        return pol.CONNECTION_ERROR
    return pol.ERROR


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: str  # success, failure, gone, timeout, connection_error
    status_code: int = 0
    retry_after: str = ""
    error: str = ""


class Sender(Protocol):
    """Sends one HTTP POST. Safe for concurrent use; returns a result for every failure
    (the worker still records an attempt if one raises)."""

    async def send(
        self, url: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> SendResult: ...


class BlockedTarget(Exception):
    """The target is, or resolves to, a forbidden address: nothing is sent."""


class ResolutionTimeout(Exception):
    """The target's host did not resolve in time: its addresses could not be checked."""


class ResolutionFailed(Exception):
    """The target's host did not resolve: nothing is sent to an unchecked address."""


async def _getaddrinfo(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


class ResolvingGuard:
    """Refuses targets whose host is, or resolves to, a forbidden address range
    (``rules.forbidden_address``: anything but public unicast) unless the allow list names
    the host or the address.

    Checked when a rule is saved (a clear error early) and, authoritatively, when the HTTP
    client connects: ``GuardedBackend`` resolves the host once, checks every address and
    connects to a checked one, so a DNS answer that changes in between (rebinding) cannot
    reach a forbidden address. A host that does not resolve (in time) is not sent to.
    """

    def __init__(
        self,
        *,
        allow: AllowList = NO_ALLOW_LIST,
        resolve: Callable[[str], Awaitable[list[str]]] = _getaddrinfo,
        timeout: float = DNS_TIMEOUT,
    ) -> None:
        self.allow = allow
        self._resolve = resolve
        self._timeout = timeout

    def check_literal(self, url: str) -> None:
        """Without DNS: raise BlockedTarget for a local name or a forbidden literal address."""
        why = refuse_literal(urlsplit(url).hostname or "", self.allow)
        if why:
            raise BlockedTarget(why)

    async def check(self, url: str) -> None:
        """When a rule is saved: InvalidInput for a forbidden target. A host that does not
        resolve (in time) passes here; every attempt checks again when it connects."""
        host = urlsplit(url).hostname or ""
        try:
            await self.addresses(host)
        except BlockedTarget as e:
            raise InvalidInput(str(e)) from None
        except (ResolutionTimeout, ResolutionFailed):
            return

    async def addresses(self, host: str) -> list[str]:
        """Resolve ``host`` once and check every address: the ones it is safe to connect
        to, in the resolver's order. BlockedTarget if any is forbidden (and neither it nor
        the host is allowed); ResolutionTimeout / ResolutionFailed if it cannot be known."""
        host = host.strip("[]")
        why = refuse_literal(host, self.allow)
        if why:
            raise BlockedTarget(why)
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._resolve(host)
        except TimeoutError:
            raise ResolutionTimeout(
                f"target host {host} did not resolve within {self._timeout:g}s"
            ) from None
        except (OSError, UnicodeError, ValueError) as e:  # no such host, or not a valid name
            raise ResolutionFailed(f"target host {host} did not resolve: {e}") from None
        addresses: list[str] = []
        for a in found:
            try:
                ip = ipaddress.ip_address(a)
            except ValueError:
                raise ResolutionFailed(f"target host {host} resolved to {a!r}") from None
            if forbidden_address(ip) and not (self.allow.host(host) or self.allow.address(ip)):
                raise BlockedTarget(
                    f"target host {host} resolves to {ip}, a forbidden address range "
                    "(loopback, private, shared, link-local, unique-local, multicast, reserved "
                    "or unspecified); allow intended internal targets with "
                    "CJ_ACTIONS_ALLOWED_TARGETS"
                )
            addresses.append(str(ip))
        if not addresses:
            raise ResolutionFailed(f"target host {host} has no address")
        return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address guard in front: the host is resolved
    and checked once, and the TCP connection goes to a checked address. httpcore still
    does TLS with the URL's host name (SNI and certificate verification), and the Host
    header is the URL's. No Unix sockets."""

    def __init__(
        self, guard: ResolvingGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.addresses(host)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None  # addresses is never empty
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedTarget("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool whose connections go through ``GuardedBackend``.
    httpx 0.28 has no parameter for the network backend (encode/httpx#3749), so the pool
    is replaced by an equal one that has it."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def _peer_is_internal(resp: httpx.Response) -> bool:
    """Whether the connection went to a non-public address (an allow-listed internal
    target, or any target when blocking is off); unknown counts as internal."""
    stream = resp.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        return True
    try:
        return forbidden_address(ipaddress.ip_address(str(peer[0]).split("%")[0]))
    except ValueError:
        return True


class HttpxSender:
    """One shared httpx.AsyncClient (connection pooling); redirects are not followed (a 3xx
    is a failure), so a target cannot bounce requests to an address the guard would refuse.

    With a guard, every connection goes to an address the guard checked (``GuardedBackend``).
    Response bodies of internal (non-public) peers are not kept: the attempt's error, which
    the API returns, would otherwise read internal services for whoever can write a rule.
    """

    def __init__(
        self,
        max_connections: int = 100,
        *,
        guard: ResolvingGuard | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        internal_bodies: bool = False,
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        transport: httpx.AsyncBaseTransport | None = None
        if guard is not None:
            transport = _GuardedTransport(GuardedBackend(guard, network_backend), limits)
        self._internal_bodies = internal_bodies
        self._client = httpx.AsyncClient(
            follow_redirects=False, limits=limits, transport=transport, trust_env=False
        )

    async def send(
        self, url: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> SendResult:
        if not any(k.lower() == "accept-encoding" for k in headers):
            # The body is read raw (a bounded excerpt): ask for it uncompressed.
            headers = {**headers, "accept-encoding": "identity"}
        status = 0
        retry_after = ""
        excerpt = bytearray()
        internal = False
        try:
            # httpx's timeout bounds each phase; asyncio.timeout bounds the whole attempt.
            async with (
                asyncio.timeout(seconds),
                self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=seconds
                ) as resp,
            ):
                status = resp.status_code
                retry_after = resp.headers.get("retry-after", "")
                internal = not self._internal_bodies and _peer_is_internal(resp)
                # A few KB at most (a small body read to its end keeps the connection for
                # reuse); closing the response drops a connection with more to come.
                async for chunk in resp.aiter_raw():
                    excerpt += chunk[: BODY_READ_LIMIT - len(excerpt)]
                    if len(excerpt) >= BODY_READ_LIMIT:
                        break
        except BlockedTarget as e:
            return SendResult(pol.BLOCKED, error=str(e))
        except (ResolutionTimeout, ResolutionFailed) as e:
            return SendResult(pol.CONNECTION_ERROR, error=str(e))
        except Exception as e:
            if not status:  # otherwise the status stands; only the body was cut short
                kind = _failure_kind(e)
                if isinstance(e, TimeoutError):
                    error = f"no response within {seconds:g}s"
                elif kind == pol.TIMEOUT:
                    error = f"timed out: {type(e).__name__}"
                else:
                    error = clean_text(f"{type(e).__name__}: {e}", 500)
                return SendResult(kind, error=error)
        outcome = pol.classify(status)
        if outcome == pol.SUCCESS:
            error = ""
        elif internal:
            error = f"HTTP {status} (body of an internal target not kept)"
        else:
            error = f"HTTP {status}: {response_excerpt(excerpt)}"
        return SendResult(outcome, status, retry_after, error.strip())

    async def close(self) -> None:
        await self._client.aclose()


def _utc(at: datetime) -> datetime:
    """``at`` in UTC, whatever zone the database session returned it in (naive = UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def webhook_body(job: Job) -> bytes:
    """The JSON body: the event envelope and the rule id. Identical on every attempt."""
    return json.dumps(
        {
            "type": job.event_type,
            "timestamp": _utc(job.created_at).isoformat().replace("+00:00", "Z"),
            "rule_id": job.rule_id,
            "delivery_id": job.delivery_id,
            "event": job.event,
        },
        separators=(",", ":"),
    ).encode()


class DeliveryWorkers:
    def __init__(
        self,
        queue: JobQueue,
        sender: Sender,
        clock: Clock,
        policy: pol.Policy,
        *,
        workers: int,
        poll_interval: float,
        endpoint_concurrency: int,
        name: str,
        guard: ResolvingGuard | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._policy = policy
        self._workers = workers
        self._poll = poll_interval
        self._cap = endpoint_concurrency
        self._name = name
        self._guard = guard
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._inflight: Counter[str] = Counter()
        self.db_ok = True
        self.delivered = 0
        self.attempts = 0

    def notify(self) -> None:
        """New or replayed jobs exist (NOTIFY): idle workers look now, not at the next poll."""
        self._wake.set()

    def _busy(self) -> list[str]:
        return [e for e, n in self._inflight.items() if n >= self._cap]

    async def run(self, stop: asyncio.Event, grace: float = 8.0) -> None:
        """Run until ``stop``; in-flight attempts get ``grace`` seconds, then are cancelled
        and their jobs released (the receiver may see that attempt again: at-least-once)."""
        tasks = [
            asyncio.create_task(self._worker(f"{self._name}/{i}", stop), name=f"delivery-{i}")
            for i in range(self._workers)
        ]
        try:
            await stop.wait()
        finally:
            self._wake.set()
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self, worker: str, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                job = await self._queue.claim(
                    self._clock.now(), self._policy.lease, worker, self._busy()
                )
                if not self.db_ok:
                    log.warning("database is back; delivering again")
                self.db_ok = True
                backoff = 0.5
            except Unavailable as e:
                if self.db_ok:
                    log.error("database unavailable; deliveries wait", extra={"error": str(e)})
                self.db_ok = False
                await wait_event(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                # Not an outage, but a worker that dies here would silently shrink the pool
                # until a restart: log it and try again after the backoff.
                log.exception("could not claim a delivery job")
                await wait_event(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if job is None:
                await wait_event(self._wake, self._poll)
                self._wake.clear()
                continue
            endpoint = job.target.endpoint
            self._inflight[endpoint] += 1
            try:
                # The outer try: a cancel (shutdown) that lands while an inner handler is
                # still recording must release the job too, not leave it to its lease.
                try:
                    await self._process(job, worker, stop)
                except Unavailable as e:
                    # The lease expires and the job is tried again; its attempt may repeat.
                    log.error(
                        "could not record a delivery; it will be retried after its lease",
                        extra={"delivery_id": job.delivery_id, "error": str(e)},
                    )
                except Exception as e:
                    # A bug (or a value the database refuses) must neither shrink the pool
                    # nor bring the job back after every lease: record it as a failed
                    # attempt, so it goes through backoff into the DLQ like any other.
                    log.exception("delivery worker error", extra={"delivery_id": job.delivery_id})
                    await self._record_error(job, worker, e)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._queue.release(job, self._clock.now()))
                raise
            finally:
                self._inflight[endpoint] -= 1
                if self._inflight[endpoint] <= 0:
                    del self._inflight[endpoint]

    async def _record_error(self, job: Job, worker: str, e: Exception) -> None:
        now = self._clock.now()
        result = SendResult(pol.ERROR, error=clean_text(f"{type(e).__name__}: {e}", 500))
        try:
            await self._record(job, worker, now, 0, result)
        except Exception:
            log.exception(
                "could not record a worker error; the job comes back after its lease",
                extra={"delivery_id": job.delivery_id},
            )

    def _lost_lease(self, job: Job, worker: str, when: str) -> None:
        metrics.WEBHOOK_LEASES_LOST.inc()
        log.warning(
            f"lost the lease {when}; another claim holds the job, nothing was recorded",
            extra={"delivery_id": job.delivery_id, "worker": worker},
        )

    async def _finish(self, job: Job, outcome: Outcome, worker: str) -> bool:
        """Record ``outcome`` if this claim still holds the job; False (and counted) if not."""
        if not await self._queue.finish(job, outcome, self._clock.now(), self._policy, worker):
            self._lost_lease(job, worker, "before its result was recorded")
            return False
        if outcome.attempt is not None:
            metrics.WEBHOOK_ATTEMPTS.labels(outcome.attempt.outcome).inc()
        return True

    async def _hold_lease(self, job: Job, worker: str) -> Job | None:
        """Before sending: the lease must cover the whole attempt and the recording of its
        result, whatever the steps before took (DNS, breaker, rate limit, pool waits).
        Extended if not, owner-checked; None if another claim took the job meanwhile."""
        now = self._clock.now()
        needed = now + timedelta(seconds=self._policy.timeout + RECORD_SLACK)
        if job.leased_until is not None and job.leased_until >= needed:
            return job
        until = now + timedelta(seconds=self._policy.lease)
        if not await self._queue.extend(job, until):
            self._lost_lease(job, worker, "before sending")
            return None
        return replace(job, leased_until=until)

    async def _process(self, job: Job, worker: str, stop: asyncio.Event) -> None:
        meta = job.event.get("metadata") or {}
        logs.bind(
            event_id=str(job.event.get("event_id", "")), trace_id=str(meta.get("trace_id", ""))
        )
        now = self._clock.now()
        url = job.target.url
        if not job.rule_enabled:
            await self._finish(
                job,
                Outcome(None, FAILED, None, "rule disabled before delivery", False, ""),
                worker,
            )
            return
        if self._guard is not None:
            # A forbidden literal address or local name, before the breaker and the rate
            # limit; names are resolved and checked when the sender connects.
            try:
                self._guard.check_literal(url)
            except BlockedTarget as e:
                await self._record(job, worker, now, 0, SendResult(pol.BLOCKED, error=str(e)))
                return
        admission = await self._queue.admit(job.target.endpoint, now, self._policy)
        if not admission.allowed:
            await self._short_circuit(job, admission, now, worker)
            return
        interval = self._policy.rate_interval
        if interval > 0:
            slot = await self._queue.reserve_slot(now, interval)
            wait = (slot - self._clock.now()).total_seconds()
            if wait > 0:
                until = slot + timedelta(seconds=self._policy.lease)
                if not await self._queue.extend(job, until):
                    self._lost_lease(job, worker, "while waiting for a rate-limit slot")
                    return
                job = replace(job, leased_until=until)
                if await wait_event(stop, wait):
                    await self._queue.release(job, self._clock.now())
                    return
        held = await self._hold_lease(job, worker)
        if held is None:
            return
        await self._attempt(held, worker)

    async def _short_circuit(
        self, job: Job, admission: pol.Admission, now: datetime, worker: str
    ) -> None:
        """The breaker is open: no connection. The job waits for the breaker's next trial
        without spending its retry budget; it expires into the DLQ after max_job_age."""
        retry_at = admission.retry_at or now + timedelta(seconds=self._poll)
        attempt = Attempt(
            job.attempt_count + 1,
            now,
            0,
            pol.SHORT_CIRCUITED,
            0,
            "circuit breaker open",
            job.target.url,
        )
        if (now - job.created_at).total_seconds() > self._policy.max_job_age:
            reason = f"expired after {self._policy.max_job_age:g}s while the breaker was open"
            await self._finish(job, Outcome(attempt, FAILED, None, reason, False, ""), worker)
            return
        # A little jitter so the queued jobs do not all wake at the same instant.
        due = retry_at + timedelta(seconds=self._rng.uniform(0, 0.2))
        await self._finish(
            job, Outcome(attempt, PENDING, due, "circuit breaker open", False, ""), worker
        )

    async def _attempt(self, job: Job, worker: str) -> None:
        body = webhook_body(job)
        started = self._clock.now()
        headers = {
            **job.target.headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signature_headers(
                job.target.secrets, job.delivery_id, int(started.timestamp()), body
            ),
        }
        t0 = time.monotonic()
        try:
            result = await self._sender.send(job.target.url, headers, body, self._policy.timeout)
        except Exception as e:
            # The Sender contract says it returns a result; one that raises is still an
            # attempt with consequences, not a job that comes back after every lease.
            log.exception("webhook sender raised", extra={"delivery_id": job.delivery_id})
            result = SendResult(pol.ERROR, error=clean_text(f"{type(e).__name__}: {e}", 500))
        elapsed = time.monotonic() - t0
        metrics.WEBHOOK_ATTEMPT_SECONDS.observe(elapsed)
        self.attempts += 1
        await self._record(job, worker, started, int(elapsed * 1000), result)

    async def _record(
        self, job: Job, worker: str, started: datetime, duration_ms: int, result: SendResult
    ) -> None:
        """Record one attempt's result with its consequences: delivered; 410 -> rule
        disabled; otherwise backoff (Retry-After on 429/503) or, out of budget, the DLQ."""
        now = self._clock.now()
        attempt = Attempt(
            job.attempt_count + 1,
            started,
            duration_ms,
            result.outcome,
            result.status_code,
            result.error,
            job.target.url,
        )
        if result.outcome == pol.SUCCESS:
            if await self._finish(
                job, Outcome(attempt, DELIVERED, None, "", True, pol.SUCCESS), worker
            ):
                self.delivered += 1
            return
        if result.outcome == pol.BLOCKED:
            # Never sent: final, not retried, not the endpoint's fault.
            outcome = Outcome(attempt, FAILED, None, result.error, False, "")
            if await self._finish(job, outcome, worker):
                log.warning(
                    "webhook target blocked",
                    extra={"delivery_id": job.delivery_id, "error": result.error},
                )
            return
        if result.outcome == pol.GONE:
            reason = f"endpoint answered 410 Gone at {now.isoformat()}; rule disabled"
            outcome = Outcome(attempt, FAILED, None, reason, True, pol.SUCCESS, reason)
            if await self._finish(job, outcome, worker):
                log.warning(
                    "endpoint is gone; rule disabled",
                    extra={"rule_id": job.rule_id, "url": mask_url(job.target.url)},
                )
            return
        breaker = (
            pol.FAILURE if pol.counts_against_endpoint(result.outcome, result.status_code) else ""
        )
        delay = pol.retry_delay(
            self._policy,
            job.round_attempts + 1,
            result.status_code,
            result.retry_after,
            now,
            self._rng,
        )
        if delay is None:
            error = f"gave up after {job.round_attempts + 1} attempts: {result.error}"
            if await self._finish(
                job, Outcome(attempt, FAILED, None, error, True, breaker), worker
            ):
                log.warning(
                    "delivery failed into the DLQ",
                    extra={"delivery_id": job.delivery_id, "error": result.error},
                )
            return
        due = now + timedelta(seconds=delay)
        await self._finish(job, Outcome(attempt, PENDING, due, result.error, True, breaker), worker)
