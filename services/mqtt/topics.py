"""The MQTT topic scheme devices publish to and subscribe for feedback on (pure).

cornjacket/v1/events/{event_type}/{aggregate_id}     body: the payload object
cornjacket/v1/envelopes/{event_type}/{aggregate_id}  body: {"payload": {...}, options}
cornjacket/v1/batch                                  body: {"events": [...], "ack": bool}
cornjacket/v1/clients/{client_id}/acks               event ids of what was accepted
cornjacket/v1/clients/{client_id}/errors             why something was rejected
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

PREFIX = "cornjacket/v1"
EVENTS = "events"
ENVELOPES = "envelopes"
BATCH = "batch"


class Form(Enum):
    PAYLOAD = EVENTS
    ENVELOPE = ENVELOPES
    BATCH = BATCH


@dataclass(frozen=True, slots=True)
class Address:
    """Where a publish goes: its body form and, except for batches, the event it names."""

    form: Form
    event_type: str = ""
    aggregate_id: str = ""


class UnknownTopic(ValueError):
    pass


def parse(topic: str) -> Address:
    """Read a publish topic; raise UnknownTopic with the accepted shapes otherwise."""
    levels = topic.split("/")
    if levels[:2] == ["cornjacket", "v1"]:
        if len(levels) == 3 and levels[2] == BATCH:
            return Address(Form.BATCH)
        if len(levels) == 5 and levels[2] in (EVENTS, ENVELOPES) and levels[3] and levels[4]:
            return Address(Form(levels[2]), levels[3], levels[4])
    raise UnknownTopic(
        f"topic {topic!r} is not one of {PREFIX}/events/{{event_type}}/{{aggregate_id}}, "
        f"{PREFIX}/envelopes/{{event_type}}/{{aggregate_id}} or {PREFIX}/batch"
    )


def event_topic(event_type: str, aggregate_id: str) -> str:
    """The topic an event is authorised as, whichever form carried it."""
    return f"{PREFIX}/{EVENTS}/{event_type}/{aggregate_id}"


def acks_topic(client_id: str) -> str:
    return f"{PREFIX}/clients/{client_id}/acks"


def errors_topic(client_id: str) -> str:
    return f"{PREFIX}/clients/{client_id}/errors"


def feedback_filter(client_id: str) -> str:
    return f"{PREFIX}/clients/{client_id}/#"


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching with ``+`` (one level) and ``#`` (the rest)."""
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def covers(allowed: str, requested: str) -> bool:
    """Whether a subscription to ``requested`` stays inside the filter ``allowed``."""
    a_levels = allowed.split("/")
    r_levels = requested.split("/")
    for i, a in enumerate(a_levels):
        if a == "#":
            return True
        if i >= len(r_levels):
            return False
        r = r_levels[i]
        if r == "#":
            return False
        if a != "+" and (r == "+" or a != r):
            return False
    return len(a_levels) == len(r_levels)
