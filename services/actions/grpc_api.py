"""gRPC transport for the action orchestrator: Protobuf <-> plain values, errors mapped."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from cornjacket.v1 import actions_pb2, actions_pb2_grpc

from services.actions.ports import Attempt, BreakerView, Delivery, DeliveryFilter, RuleChanges
from services.actions.rules import (
    Rule,
    RuleDraft,
    Target,
    mask_headers,
    mask_secret,
    mask_url,
)
from services.actions.service import ActionService, SampleEvent
from services.core.errors import InvalidInput
from services.core.events import SCHEMA_VERSION, Metadata
from services.infra.audit import AsyncAuditLog
from services.infra.codec import from_struct, parse_rfc3339, to_struct, to_timestamp
from services.infra.grpc_errors import grpc_errors


def _rfc3339(dt: datetime | None) -> str:
    return "" if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


# generated_secret defaults to "none was generated" (bandit B107 takes it for a password).
def rule_to_proto(rule: Rule, generated_secret: str = "") -> actions_pb2.Rule:  # nosec B107
    return actions_pb2.Rule(
        rule_id=rule.rule_id,
        name=rule.name,
        event_type_pattern=rule.event_type_pattern,
        condition=rule.condition,
        target=actions_pb2.WebhookTarget(
            url=mask_url(rule.target.url),
            headers=to_struct(mask_headers(rule.target.headers)),
            secrets=[mask_secret(s) for s in rule.target.secrets],
        ),
        enabled=rule.enabled,
        disabled_reason=rule.disabled_reason,
        created_at=to_timestamp(rule.created_at),
        updated_at=to_timestamp(rule.updated_at),
        generated_secret=generated_secret,
    )


def _attempt(a: Attempt) -> actions_pb2.DeliveryAttempt:
    return actions_pb2.DeliveryAttempt(
        attempt=a.attempt,
        started_at=to_timestamp(a.started_at),
        duration_ms=a.duration_ms,
        outcome=a.outcome,
        status_code=a.status_code,
        error=a.error,
        url=mask_url(a.url),
    )


def delivery_to_proto(d: Delivery) -> actions_pb2.Delivery:
    return actions_pb2.Delivery(
        delivery_id=d.delivery_id,
        rule_id=d.rule_id,
        event_id=d.event_id,
        event_type=d.event_type,
        target_url=mask_url(d.target_url),
        status=d.status,
        attempt_count=d.attempt_count,
        next_attempt_at=_rfc3339(d.next_attempt_at),
        last_error=d.last_error,
        created_at=to_timestamp(d.created_at),
        updated_at=to_timestamp(d.updated_at),
        delivered_at=_rfc3339(d.delivered_at),
        replay_count=d.replay_count,
        attempts=[_attempt(a) for a in d.attempts],
    )


def _breaker(b: BreakerView) -> actions_pb2.Breaker:
    return actions_pb2.Breaker(
        endpoint=b.endpoint,
        state=b.state,
        consecutive_failures=b.consecutive_failures,
        retry_at=_rfc3339(b.retry_at),
        updated_at=to_timestamp(b.updated_at),
    )


def audited_rule(rule: Rule) -> dict[str, object]:
    """A rule as the audit log keeps it: secrets masked as in responses, header values and a
    URL's password hidden."""
    return {
        "name": rule.name,
        "event_type_pattern": rule.event_type_pattern,
        "condition": rule.condition,
        "target": {
            "url": mask_url(rule.target.url),
            "headers": mask_headers(rule.target.headers),
            "secrets": [mask_secret(s) for s in rule.target.secrets],
        },
        "enabled": rule.enabled,
        "disabled_reason": rule.disabled_reason,
    }


_SERVICE = "/cornjacket.v1.ActionService/"


def _target(t: actions_pb2.WebhookTarget) -> Target:
    # Values are checked to be strings by rules.validate_headers.
    headers = from_struct(t.headers) if t.HasField("headers") else {}
    return Target(url=t.url, headers=headers, secrets=tuple(t.secrets))


class ActionServicer(actions_pb2_grpc.ActionServiceServicer):
    def __init__(self, service: ActionService, audit: AsyncAuditLog) -> None:
        self._service = service
        self._audit = audit

    @grpc_errors
    async def CreateRule(
        self, request: actions_pb2.CreateRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Rule:
        async with self._audit.record(context, _SERVICE + "CreateRule") as audit:
            saved = await self._service.create_rule(
                RuleDraft(
                    name=request.name,
                    event_type_pattern=request.event_type_pattern,
                    condition=request.condition,
                    target=_target(request.target),
                    enabled=request.enabled if request.HasField("enabled") else True,
                )
            )
            audit.target = saved.rule.rule_id
            audit.change = {"after": audited_rule(saved.rule)}
        return rule_to_proto(saved.rule, saved.generated_secret)

    @grpc_errors
    async def GetRule(
        self, request: actions_pb2.GetRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Rule:
        return rule_to_proto(await self._service.get_rule(request.rule_id))

    @grpc_errors
    async def ListRules(
        self, request: actions_pb2.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.ListRulesResponse:
        limit = request.limit if request.HasField("limit") else None
        page = await self._service.list_rules(limit, request.offset)
        return actions_pb2.ListRulesResponse(
            rules=[rule_to_proto(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @grpc_errors
    async def UpdateRule(
        self, request: actions_pb2.UpdateRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Rule:
        changes = RuleChanges(
            name=request.name if request.HasField("name") else None,
            event_type_pattern=request.event_type_pattern
            if request.HasField("event_type_pattern")
            else None,
            condition=request.condition if request.HasField("condition") else None,
            target=_target(request.target) if request.HasField("target") else None,
        )
        async with self._audit.record(context, _SERVICE + "UpdateRule", request.rule_id) as audit:
            before = await self._service.get_rule(request.rule_id)
            audit.change = {"before": audited_rule(before)}
            after = await self._service.update_rule(request.rule_id, changes)
            audit.change["after"] = audited_rule(after)
        return rule_to_proto(after)

    @grpc_errors
    async def EnableRule(
        self, request: actions_pb2.EnableRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Rule:
        return rule_to_proto(await self._set_enabled(context, "EnableRule", request.rule_id, True))

    @grpc_errors
    async def DisableRule(
        self, request: actions_pb2.DisableRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Rule:
        return rule_to_proto(
            await self._set_enabled(context, "DisableRule", request.rule_id, False, request.reason)
        )

    async def _set_enabled(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        rule_id: str,
        enabled: bool,
        reason: str = "",
    ) -> Rule:
        async with self._audit.record(context, _SERVICE + method, rule_id) as audit:
            before = await self._service.get_rule(rule_id)
            audit.change = {"before": audited_rule(before)}
            after = await self._service.set_enabled(rule_id, enabled, reason)
            audit.change["after"] = audited_rule(after)
        return after

    @grpc_errors
    async def DeleteRule(
        self, request: actions_pb2.DeleteRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.DeleteRuleResponse:
        async with self._audit.record(context, _SERVICE + "DeleteRule", request.rule_id) as audit:
            audit.change = {"before": audited_rule(await self._service.get_rule(request.rule_id))}
            await self._service.delete_rule(request.rule_id)
        return actions_pb2.DeleteRuleResponse()

    @grpc_errors
    async def ListDeliveries(
        self, request: actions_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.ListDeliveriesResponse:
        flt = DeliveryFilter(
            rule_id=request.rule_id,
            status=request.status,
            event_id=request.event_id,
            since=parse_rfc3339("since", request.since),
            until=parse_rfc3339("until", request.until),
        )
        limit = request.limit if request.HasField("limit") else None
        page = await self._service.list_deliveries(flt, limit, request.offset)
        return actions_pb2.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @grpc_errors
    async def GetDelivery(
        self, request: actions_pb2.GetDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Delivery:
        return delivery_to_proto(await self._service.get_delivery(request.delivery_id))

    @grpc_errors
    async def ListBreakers(
        self, request: actions_pb2.ListBreakersRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.ListBreakersResponse:
        return actions_pb2.ListBreakersResponse(
            breakers=[_breaker(b) for b in await self._service.breakers()]
        )

    @grpc_errors
    async def ReplayDeliveries(
        self, request: actions_pb2.ReplayDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.ReplayDeliveriesResponse:
        async with self._audit.record(context, _SERVICE + "ReplayDeliveries") as audit:
            audit.change = {
                "delivery_ids": list(request.delivery_ids),
                "all_failed": request.all_failed,
                "rule_id": request.rule_id,
            }
            ids = await self._service.replay(
                list(request.delivery_ids), request.all_failed, request.rule_id
            )
            audit.change["replayed"] = ids
        return actions_pb2.ReplayDeliveriesResponse(delivery_ids=ids, replayed=len(ids))

    @grpc_errors
    async def DiscardDelivery(
        self, request: actions_pb2.DiscardDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.Delivery:
        async with self._audit.record(
            context, _SERVICE + "DiscardDelivery", request.delivery_id
        ) as audit:
            delivery = await self._service.discard(request.delivery_id)
            audit.change = {"delivery_id": delivery.delivery_id, "status": delivery.status}
        return delivery_to_proto(delivery)

    @grpc_errors
    async def TestRule(
        self, request: actions_pb2.TestRuleRequest, context: grpc.aio.ServicerContext
    ) -> actions_pb2.TestRuleResponse:
        e, m = request.event, request.event.metadata
        try:
            payload = from_struct(e.payload) if e.HasField("payload") else {}
        except ValueError as err:
            raise InvalidInput(f"event.payload: {err}") from None
        sample = SampleEvent(
            event_type=e.event_type,
            aggregate_id=e.aggregate_id,
            payload=payload,
            metadata=Metadata(
                trace_id=m.trace_id,
                source=m.source or "grpc",
                schema_version=m.schema_version or SCHEMA_VERSION,
                span_id=m.span_id,
            ),
        )
        result = await self._service.evaluate_rule(
            request.rule_id, request.event_type_pattern, request.condition, sample
        )
        return actions_pb2.TestRuleResponse(
            matched=result.matched,
            pattern_matched=result.pattern_matched,
            condition_matched=result.condition_matched,
            event_type_pattern=result.event_type_pattern,
            condition=result.condition,
        )
