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
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from services.actions import policy as pol
from services.actions.ports import DELIVERED, FAILED, PENDING, Attempt, Job, JobQueue, Outcome
from services.actions.rules import forbidden_address
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


class HttpxSender:
    """One shared httpx.AsyncClient (connection pooling); redirects are not followed (a 3xx
    is a failure), so a target cannot bounce requests to an address the guard would refuse."""

    def __init__(self, max_connections: int = 100) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
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
                # A few KB at most (a small body read to its end keeps the connection for
                # reuse); closing the response drops a connection with more to come.
                async for chunk in resp.aiter_raw():
                    excerpt += chunk[: BODY_READ_LIMIT - len(excerpt)]
                    if len(excerpt) >= BODY_READ_LIMIT:
                        break
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
        error = "" if outcome == pol.SUCCESS else f"HTTP {status}: {response_excerpt(excerpt)}"
        return SendResult(outcome, status, retry_after, error.strip())

    async def close(self) -> None:
        await self._client.aclose()


class ResolutionTimeout(Exception):
    """The target's host did not resolve in time: its addresses could not be checked."""


async def _getaddrinfo(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    return [str(info[4][0]).split("%")[0] for info in infos]


class ResolvingGuard:
    """Refuses targets whose host is, or resolves to, a forbidden address range.

    Checked when a rule is saved and again before each attempt (DNS can change). A host
    that does not resolve passes here and fails as a connection error when sent to.
    Resolution is bounded by ``timeout`` (it holds a claimed job's lease).
    """

    def __init__(
        self,
        *,
        resolve: Callable[[str], Awaitable[list[str]]] = _getaddrinfo,
        timeout: float = DNS_TIMEOUT,
    ) -> None:
        self._resolve = resolve
        self._timeout = timeout

    async def check(self, url: str) -> None:
        """When a rule is saved: a host that does not resolve in time passes (each attempt
        checks again)."""
        with contextlib.suppress(ResolutionTimeout):
            await self.check_before_send(url)

    async def check_before_send(self, url: str) -> None:
        """Raise InvalidInput for a forbidden address, ResolutionTimeout when the host's
        addresses are not known within the timeout (the attempt must not be sent)."""
        host = urlsplit(url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidInput(f"target host {host!r} is a forbidden (local) address")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                async with asyncio.timeout(self._timeout):
                    found = await self._resolve(host)
            except TimeoutError:
                raise ResolutionTimeout(
                    f"target host {host} did not resolve within {self._timeout:g}s"
                ) from None
            except (OSError, UnicodeError, ValueError):  # no such host, or not a valid name
                return
            addresses = []
            for a in found:
                with contextlib.suppress(ValueError):
                    addresses.append(ipaddress.ip_address(a))
        for ip in addresses:
            if forbidden_address(ip):
                raise InvalidInput(
                    f"target host {host} resolves to {ip}, a forbidden address range "
                    "(private, loopback, link-local or reserved)"
                )


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
            try:
                await self._guard.check_before_send(url)
            except InvalidInput as e:
                attempt = Attempt(job.attempt_count + 1, now, 0, pol.BLOCKED, 0, str(e), url)
                await self._finish(job, Outcome(attempt, FAILED, None, str(e), False, ""), worker)
                return
            except ResolutionTimeout as e:
                # Not known to be safe: not sent. A failed attempt (the endpoint's name does
                # not resolve) with backoff, counted against the endpoint.
                result = SendResult(pol.CONNECTION_ERROR, error=str(e))
                await self._record(job, worker, now, 0, result)
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
        if result.outcome == pol.GONE:
            reason = f"endpoint answered 410 Gone at {now.isoformat()}; rule disabled"
            outcome = Outcome(attempt, FAILED, None, reason, True, pol.SUCCESS, reason)
            if await self._finish(job, outcome, worker):
                log.warning(
                    "endpoint is gone; rule disabled",
                    extra={"rule_id": job.rule_id, "url": job.target.url},
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
