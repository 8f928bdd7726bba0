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
import secrets
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerConfig
from amqtt.errors import MQTTError, NoDataError
from amqtt.mqtt.connack import SERVER_UNAVAILABLE, ConnackPacket
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.session import INCOMING, ApplicationMessage, IncomingApplicationMessage, Session

from services.mqtt.access import Access, Identity, Login, Refused
from services.mqtt.gateway import Gateway, GatewayStopped, Publish

log = logging.getLogger(__name__)


class GatewayBroker(Broker):
    def __init__(
        self,
        *,
        host: str,
        port: int | None,
        gateway: Gateway,
        access: Access,
        max_connections: int,
        max_pending: int = 100,
        connect_timeout: float = 10.0,
        max_packet_bytes: int = 1024 * 1024,
        tls: tuple[int, Path, Path] | None = None,  # port, certificate, key
    ) -> None:
        listeners: dict[str, Any] = {}
        if port is not None:
            listeners["default"] = {"type": "tcp", "bind": f"{host}:{port}"}
        if tls is not None:
            # amqtt needs a listener named "default" (the others inherit its unset fields).
            listeners["tls" if listeners else "default"] = {
                "type": "tcp",
                "bind": f"{host}:{tls[0]}",
                "ssl": True,
                "certfile": str(tls[1]),
                "keyfile": str(tls[2]),
            }
        super().__init__(
            {
                "listeners": listeners,
                # No amqtt plugins: authentication and ACLs are ours, $SYS topics are off.
                "plugins": {},
            }
        )
        self._gateway = gateway
        self._access = access
        self._max_connections = max_connections
        self._max_pending = max_pending
        self._connect_timeout = connect_timeout
        self._max_packet_bytes = max_packet_bytes
        self.connected = 0
        self.pending = 0  # sockets accepted whose CONNECT is not yet settled

    async def stop_listening(self) -> None:
        """Refuse new connections; connected clients keep going until shutdown()."""
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        # Sockets that have not logged in yet are capped before a byte is read, and every
        # packet's size is checked from its header, before its body is read.
        if self.pending >= self._max_pending:
            log.warning(
                "mqtt connection dropped: too many connections before CONNECT",
                extra={"max_pending": self._max_pending},
            )
            writer.close()
            return
        await self._client_connected(
            listener_name,
            LimitedReader(reader, self._max_packet_bytes),
            StreamWriterAdapter(writer),
        )

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """amqtt's CONNECT handling, with the whole login checked before any session lookup.

        amqtt 0.12.1 deletes (clean session) or takes over (persistent) the session of a
        known client id first and authenticates later: a wrong password could disconnect
        a device or wipe its subscriptions. Here nothing existing is touched until the
        login succeeded. The CONNECT must arrive within the connect timeout.
        """
        self.pending += 1
        try:
            try:
                handler, session = await asyncio.wait_for(
                    BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager),
                    self._connect_timeout,
                )
            except NoDataError:
                await writer.close()
                raise
            except TimeoutError:
                log.info(
                    "mqtt connection dropped: no CONNECT in time",
                    extra={"address": remote_address, "timeout": self._connect_timeout},
                )
                await writer.close()
                raise MQTTError("no CONNECT within the connect timeout") from None
            try:
                who = await self._access.login(
                    Login(
                        client_id=session.client_id or "",
                        username=session.username,
                        password=session.password,
                        address=remote_address,
                        will_topic=session.will_topic if session.will_flag else None,
                        will_retain=bool(session.will_flag and session.will_retain),
                    )
                )
            except Refused as r:
                log.warning(
                    "mqtt connection refused",
                    extra={
                        "client_id": session.client_id,
                        "username": session.username,
                        "address": remote_address,
                        "reason": str(r),
                    },
                )
                await ConnackPacket.build(0, r.code).to_stream(writer)
                await writer.close()
                raise MQTTError(f"CONNECT refused: {r}") from None
        finally:
            self.pending -= 1
        # amqtt would name an id-less client "amqtt/<random>": a "/" does not belong in a
        # feedback topic, so it is the username, or a random id without one.
        session.client_id = who.client_id or f"anonymous-{secrets.token_hex(8)}"
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain"):
                setattr(existing, attr, getattr(session, attr))
            existing.keep_alive = session.keep_alive
            existing.username = session.username
            existing.password = session.password
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        # Who logged in (with how: a token's subject has rights without a users-file entry).
        session.cj_identity = Identity(who.username, session.client_id, who.token)
        return handler, session

    async def _authenticate(self, session: Session, _: ListenerConfig) -> bool:
        # Every session that gets here passed Access.login in _initialize_client_session.
        return True

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


class LimitedReader(StreamReaderAdapter):
    """Reads MQTT packets, refusing one whose declared size is over the limit.

    It follows the framing as amqtt reads it (a type byte, the variable-length remaining
    length, then the body) and ends the stream as soon as a remaining length over the
    limit is decoded: the body is never read into memory.
    """

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        super().__init__(reader)
        self._limit = limit
        self._state = "type"
        self._length = 0
        self._shift = 0
        self._body_left = 0

    async def read(self, n: int = -1) -> bytes:
        if self._state == "closed":
            raise ConnectionResetError("packet over the size limit")
        data: bytes = await super().read(n)
        i = 0
        while i < len(data):
            if self._state == "body":  # amqtt reads a body in one or several calls
                take = min(self._body_left, len(data) - i)
                self._body_left -= take
                i += take
                if self._body_left == 0:
                    self._state = "type"
                continue
            byte = data[i]
            i += 1
            if self._state == "type":
                self._state, self._length, self._shift = "length", 0, 0
                continue
            self._length |= (byte & 0x7F) << self._shift
            self._shift += 7
            if byte & 0x80 and self._shift < 28:
                continue
            if self._length > self._limit:
                log.warning(
                    "mqtt connection closed: packet over the size limit",
                    extra={"bytes": self._length, "limit": self._limit},
                )
                self._state = "closed"
                raise ConnectionResetError("packet over the size limit")
            self._body_left = self._length
            self._state = "body" if self._length else "type"
        return data


def _identity(session: Session) -> Identity:
    who = getattr(session, "cj_identity", None)
    if isinstance(who, Identity):
        return who
    # Not logged in through _initialize_client_session: no user, so no user's rights.
    return Identity(username=None, client_id=session.client_id or "")


class BrokerFeedback:
    """Feedback port: the gateway's JSON messages go out through the broker."""

    def __init__(self) -> None:
        self.broker: Broker | None = None

    async def send(self, topic: str, body: dict[str, Any]) -> None:
        if self.broker is None:
            return
        data = json.dumps(body, separators=(",", ":")).encode()
        await self.broker.internal_message_broadcast(topic, data, QOS_1)
