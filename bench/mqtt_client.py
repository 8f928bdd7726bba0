"""Minimal asyncio MQTT 3.1.1 publisher for the load generator: CONNECT, QoS 1 PUBLISH,
PUBACK matching. Cheap per message, so the client is not what the benchmark measures."""

from __future__ import annotations

import asyncio
import struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class MqttConnection:
    def __init__(
        self, host: str, port: int, client_id: str, username: str = "", password: str = ""
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password = username, password
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        # Protocol "MQTT" level 4, clean session, keep-alive 60 s.
        # Flags: clean session, plus user name and password when given (0x80 | 0x40).
        flags = 0x02 | (0xC0 if self.username else 0)
        var = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
        body = var + _str(self.client_id)
        if self.username:
            body += _str(self.username) + _str(self.password)
        self.writer.write(bytes([0x10]) + _varint(len(body)) + body)
        head = await self.reader.readexactly(4)
        if head[0] != 0x20 or head[3] != 0:
            raise ConnectionError(f"CONNACK refused: return code {head[3]}")
        self._reader_task = asyncio.create_task(self._read())

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1: returns when the broker's PUBACK arrives."""
        assert self.writer is not None
        pid = self._packet_id()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[pid] = fut
        body = _str(topic) + struct.pack("!H", pid) + payload
        self.writer.write(bytes([0x32]) + _varint(len(body)) + body)
        await fut

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._waiting:
                return self._next_id
        raise RuntimeError("65535 publishes in flight")

    async def _read(self) -> None:
        assert self.reader is not None
        try:
            while True:
                first = (await self.reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    b = (await self.reader.readexactly(1))[0]
                    length += (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                data = await self.reader.readexactly(length)
                if first >> 4 == 4:  # PUBACK
                    fut = self._waiting.pop(struct.unpack("!H", data[:2])[0], None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"connection lost: {e!r}"))
            self._waiting.clear()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(bytes([0xE0, 0]))  # DISCONNECT
            self.writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
