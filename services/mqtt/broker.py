"""amqtt adapter: the embedded broker, with publishes routed through the gateway.

amqtt acknowledges a QoS 1 publish as soon as it has read it. Here the protocol handler
hands every incoming publish to the gateway and sends PUBACK (QoS 1) or PUBREC (QoS 2)
only once the gateway has settled it, i.e. after the outbox commit. Device publishes are
not re-broadcast to other subscribers; only the gateway's feedback messages are.

This overrides a few of amqtt's underscore methods (pinned amqtt==0.12.1); the
decision record docs/decisions/0008-mqtt-gateway.md says why and what to re-check on
an upgrade.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerConfig
from amqtt.mqtt.connack import SERVER_UNAVAILABLE, ConnackPacket
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.session import INCOMING, ApplicationMessage, IncomingApplicationMessage, Session

from services.mqtt.access import Access, Identity
from services.mqtt.gateway import Gateway, GatewayStopped, Publish

log = logging.getLogger(__name__)


class GatewayBroker(Broker):
    def __init__(
        self,
        *,
        host: str,
        port: int,
        gateway: Gateway,
        access: Access,
        max_connections: int,
    ) -> None:
        super().__init__(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
                # No amqtt plugins: authentication and ACLs are ours, $SYS topics are off.
                "plugins": {},
            }
        )
        self._gateway = gateway
        self._access = access
        self._max_connections = max_connections
        self.connected = 0

    async def stop_listening(self) -> None:
        """Refuse new connections; connected clients keep going until shutdown()."""
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()

    async def _authenticate(self, session: Session, _: ListenerConfig) -> bool:
        ok = await self._access.authenticate(session.username, session.password)
        if not ok:
            log.warning(
                "mqtt connection refused: bad credentials",
                extra={"client_id": session.client_id, "username": session.username},
            )
        return ok

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        if action == Action.SUBSCRIBE:
            allowed = self._access.may_subscribe(_identity(session), topic)
            if not allowed:
                log.info(
                    "mqtt subscription refused",
                    extra={"client_id": session.client_id, "topic": topic},
                )
            return allowed
        # RECEIVE: what a client subscribed to was checked then. PUBLISH never reaches
        # here: the gateway settles every publish itself.
        return True

    async def _handle_client_session(self, *args: Any) -> None:
        # (reader, writer, client_session, handler, server, listener_name)
        writer, session, handler = args[1], args[2], args[3]
        if self.connected >= self._max_connections:
            log.warning(
                "mqtt connection refused: too many connections",
                extra={"client_id": session.client_id, "max_connections": self._max_connections},
            )
            await ConnackPacket.build(0, SERVER_UNAVAILABLE).to_stream(writer)
            await writer.close()
            return
        handler.__class__ = IngestingHandler
        handler.gateway = self._gateway
        self.connected += 1
        try:
            await super()._handle_client_session(*args)
        finally:
            self.connected -= 1


class IngestingHandler(BrokerProtocolHandler):
    """Settles incoming publishes through the gateway before acknowledging them."""

    gateway: Gateway

    async def _handle_qos0_message_flow(self, app_message: ApplicationMessage) -> None:
        if app_message.direction != INCOMING:
            await super()._handle_qos0_message_flow(app_message)
            return
        publish = self._publish(app_message)
        if publish is not None:
            self.gateway.submit(publish)

    async def _handle_qos1_message_flow(self, app_message: ApplicationMessage) -> None:
        if app_message.direction != INCOMING:
            await super()._handle_qos1_message_flow(app_message)
            return
        publish = self._publish(app_message)
        if publish is None or not await self._settle(publish):
            return
        assert app_message.packet_id is not None
        puback = PubackPacket.build(app_message.packet_id)
        await self._send_packet(puback)
        app_message.puback_packet = puback

    async def _handle_qos2_message_flow(self, app_message: ApplicationMessage) -> None:
        if app_message.direction != INCOMING or not isinstance(
            app_message, IncomingApplicationMessage
        ):
            await super()._handle_qos2_message_flow(app_message)
            return
        assert self.session is not None and app_message.packet_id is not None
        packet_id = app_message.packet_id
        # A repeat of a QoS 2 publish we already settled (PUBREC lost) is not ingested again.
        if packet_id not in self.session.inflight_in:
            publish = self._publish(app_message)
            if publish is None or not await self._settle(publish):
                return
            self.session.inflight_in[packet_id] = app_message
        await self._send_packet(PubrecPacket.build(packet_id))
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        previous = self._pubrel_waiters.get(packet_id)
        if previous is not None and not previous.done():
            previous.cancel()
        self._pubrel_waiters[packet_id] = waiter
        try:
            await waiter
        except asyncio.CancelledError:
            return
        finally:
            self._pubrel_waiters.pop(packet_id, None)
        self.session.inflight_in.pop(packet_id, None)
        await self._send_packet(PubcompPacket.build(packet_id))

    def _publish(self, app_message: ApplicationMessage) -> Publish | None:
        if self.session is None or app_message.topic is None:
            return None
        return Publish(
            who=_identity(self.session),
            topic=app_message.topic,
            body=bytes(app_message.data or b""),
            qos=app_message.qos or QOS_0,
            packet_id=app_message.packet_id,
        )

    async def _settle(self, publish: Publish) -> bool:
        try:
            await self.gateway.handle(publish)
        except GatewayStopped:
            # Not acknowledged: the device sends it again to whichever instance it reaches.
            return False
        return True


def _identity(session: Session) -> Identity:
    return Identity(username=session.username or None, client_id=session.client_id or "")


class BrokerFeedback:
    """Feedback port: the gateway's JSON messages go out through the broker."""

    def __init__(self) -> None:
        self.broker: Broker | None = None

    async def send(self, topic: str, body: dict[str, Any]) -> None:
        if self.broker is None:
            return
        data = json.dumps(body, separators=(",", ":")).encode()
        await self.broker.internal_message_broadcast(topic, data, QOS_1)
