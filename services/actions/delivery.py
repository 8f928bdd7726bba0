"""Delivery workers: claim due jobs from PostgreSQL and send them as signed webhooks.

Each worker takes one job at a time under a lease, asks the endpoint's shared breaker,
reserves a slot of the global rate limit (waiting, never dropping), sends one HTTP attempt
(httpx, total timeout per attempt), and records the result in one transaction. A slow or
dead endpoint holds at most ``endpoint_concurrency`` workers of a process, so deliveries to
other endpoints keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
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


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: str  # success, failure, gone, timeout, connection_error
    status_code: int = 0
    retry_after: str = ""
    error: str = ""


class Sender(Protocol):
    """Sends one HTTP POST. Safe for concurrent use; never raises for HTTP-level failures."""

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
        try:
            # httpx's timeout bounds each phase; asyncio.timeout bounds the whole attempt.
            async with asyncio.timeout(seconds):
                resp = await self._client.post(url, content=body, headers=headers, timeout=seconds)
        except TimeoutError:
            return SendResult(pol.TIMEOUT, error=f"no response within {seconds:g}s")
        except httpx.TimeoutException as e:
            return SendResult(pol.TIMEOUT, error=f"timed out: {type(e).__name__}")
        except httpx.HTTPError as e:
            return SendResult(pol.CONNECTION_ERROR, error=f"{type(e).__name__}: {e}"[:500])
        outcome = pol.classify(resp.status_code)
        error = "" if outcome == pol.SUCCESS else f"HTTP {resp.status_code}: {resp.text[:200]}"
        return SendResult(
            outcome, resp.status_code, resp.headers.get("retry-after", ""), error.strip()
        )

    async def close(self) -> None:
        await self._client.aclose()


class ResolvingGuard:
    """Refuses targets whose host is, or resolves to, a forbidden address range.

    Checked when a rule is saved and again before each attempt (DNS can change). A host
    that does not resolve passes here and fails as a connection error when sent to.
    """

    async def check(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidInput(f"target host {host!r} is a forbidden (local) address")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            except OSError:
                return
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        for ip in addresses:
            if forbidden_address(ip):
                raise InvalidInput(
                    f"target host {host} resolves to {ip}, a forbidden address range "
                    "(private, loopback, link-local or reserved)"
                )


def webhook_body(job: Job) -> bytes:
    """The JSON body: the event envelope and the rule id. Identical on every attempt."""
    return json.dumps(
        {
            "type": job.event_type,
            "timestamp": job.created_at.isoformat().replace("+00:00", "Z"),
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
            if job is None:
                await wait_event(self._wake, self._poll)
                self._wake.clear()
                continue
            endpoint = job.target.endpoint
            self._inflight[endpoint] += 1
            try:
                await self._process(job, worker, stop)
            except Unavailable as e:
                # The lease expires and the job is tried again; its attempt may repeat.
                log.error(
                    "could not record a delivery; it will be retried after its lease",
                    extra={"delivery_id": job.delivery_id, "error": str(e)},
                )
            except InvalidInput as e:
                log.warning(
                    "delivery refused", extra={"delivery_id": job.delivery_id, "error": str(e)}
                )
            except Exception:
                # A bug must not shrink the pool; the job comes back after its lease.
                log.exception("delivery worker error", extra={"delivery_id": job.delivery_id})
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._queue.release(job.delivery_id, self._clock.now()))
                raise
            finally:
                self._inflight[endpoint] -= 1
                if self._inflight[endpoint] <= 0:
                    del self._inflight[endpoint]

    async def _finish(self, job: Job, outcome: Outcome, worker: str) -> None:
        await self._queue.finish(job, outcome, self._clock.now(), self._policy, worker)
        if outcome.attempt is not None:
            metrics.WEBHOOK_ATTEMPTS.labels(outcome.attempt.outcome).inc()

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
                await self._guard.check(url)
            except InvalidInput as e:
                attempt = Attempt(job.attempt_count + 1, now, 0, pol.BLOCKED, 0, str(e), url)
                await self._finish(job, Outcome(attempt, FAILED, None, str(e), False, ""), worker)
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
                await self._queue.extend(
                    job.delivery_id, slot + timedelta(seconds=self._policy.lease)
                )
                if await wait_event(stop, wait):
                    await self._queue.release(job.delivery_id, self._clock.now())
                    return
        await self._attempt(job, worker)

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
        result = await self._sender.send(job.target.url, headers, body, self._policy.timeout)
        elapsed = time.monotonic() - t0
        metrics.WEBHOOK_ATTEMPT_SECONDS.observe(elapsed)
        duration_ms = int(elapsed * 1000)
        self.attempts += 1
        now = self._clock.now()
        number = job.attempt_count + 1
        attempt = Attempt(
            number,
            started,
            duration_ms,
            result.outcome,
            result.status_code,
            result.error,
            job.target.url,
        )
        if result.outcome == pol.SUCCESS:
            outcome = Outcome(attempt, DELIVERED, None, "", True, pol.SUCCESS)
            self.delivered += 1
        elif result.outcome == pol.GONE:
            reason = f"endpoint answered 410 Gone at {now.isoformat()}; rule disabled"
            outcome = Outcome(attempt, FAILED, None, reason, True, pol.SUCCESS, reason)
            log.warning(
                "endpoint is gone; rule disabled",
                extra={"rule_id": job.rule_id, "url": job.target.url},
            )
        else:
            breaker = (
                pol.FAILURE
                if pol.counts_against_endpoint(result.outcome, result.status_code)
                else ""
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
                outcome = Outcome(attempt, FAILED, None, error, True, breaker)
                log.warning(
                    "delivery failed into the DLQ",
                    extra={"delivery_id": job.delivery_id, "error": result.error},
                )
            else:
                due = now + timedelta(seconds=delay)
                outcome = Outcome(attempt, PENDING, due, result.error, True, breaker)
        await self._finish(job, outcome, worker)
