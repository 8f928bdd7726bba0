"""Generate the OpenAPI 3 document of the HTTP/JSON face from the protos.

Reads the descriptor set Envoy transcodes with (gen/envoy/cornjacket.pb) and applies the same
rules as Envoy's gRPC-JSON transcoder as we configure it: `google.api.http` paths and verbs,
path variables, the remaining fields of GET requests as query parameters (nested fields with
dots), `body: "*"` as the JSON body, proto field names (snake_case), proto3 JSON types
(int64 as string, Timestamp as RFC 3339, Struct as object, Value as any JSON). Adds what Envoy
itself answers: /health, the 202 of POST /api/v1/events and the error body of every reply.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from google.api import annotations_pb2  # registers the http option extension
from google.protobuf import descriptor_pb2

from services.cli.envoy_config import ROUTE_SCOPES

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = ROOT / "gen" / "envoy" / "cornjacket.pb"
OUT = ROOT / "gen" / "openapi" / "openapi.json"
F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "cornjacket.v1"
# Routes whose transcoded 200 the edge turns into 202 (the Lua filter in envoy.yaml.tmpl).
ACCEPTED_202 = {("post", "/api/v1/events")}
ERRORS = {
    "400": "invalid input (the message says which field and why)",
    "404": "not found, or no route",
    "413": "request body too large",
    "500": "internal error",
    "503": "a dependency (database, broker) is unavailable; nothing was done, retry",
}
# Envoy's answers before a request reaches a service (docs/decisions/0014).
AUTH_ERRORS = {
    "401": "no valid bearer token (missing, malformed, expired, not yet valid, wrongly signed, "
    "wrong issuer or audience); see the WWW-Authenticate header",
    "403": "the token is valid but its scope does not include {scope}",
}
_SCALARS: dict[int, dict[str, Any]] = {
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_INT64: {"type": "string", "format": "int64"},
    F.TYPE_SINT64: {"type": "string", "format": "int64"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_UUID = {"type": "string", "format": "uuid"}
_PAGE = {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100}
# What the services check beyond the proto types (services/*/validation.py and the cores),
# so the document tells clients, and fuzzers, what is valid.
FIELD_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("IngestEventRequest", "event_type"): {
        "type": "string",
        "maxLength": 128,
        "pattern": r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$",
    },
    ("IngestEventRequest", "aggregate_id"): {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$",
    },
    ("IngestEventRequest", "payload"): {
        "type": "object",
        "description": "any JSON object; sensor.reading needs value (number) and unit "
        "(string), user.login user_id and ip, system.alert level and message",
    },
    ("IngestEventRequest", "trace_id"): {"type": "string", "maxLength": 128},
    ("IngestEventRequest", "idempotency_key"): {"type": "string", "maxLength": 256},
    ("IngestEventsRequest", "events"): {"maxItems": 500},
    ("GetProjectionRequest", "projection_type"): {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]{0,63}$",
    },
    ("ListProjectionsRequest", "projection_type"): {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]{0,63}$",
    },
    ("ListProjectionsRequest", "limit"): _PAGE,
    ("ListProjectionsRequest", "offset"): {"type": "integer", "format": "int32", "minimum": 0},
    ("ListDeadLettersRequest", "limit"): _PAGE,
    ("ListDeadLettersRequest", "offset"): {"type": "integer", "format": "int32", "minimum": 0},
    ("DeadLetterFilter", "status"): {
        "type": "string",
        "enum": ["", "pending", "replayed", "discarded"],
    },
    ("GetDeadLetterRequest", "dlq_id"): _UUID,
    ("ReplayDeadLettersRequest", "dlq_ids"): {"type": "array", "items": _UUID},
    ("ReplayDeadLettersRequest", "limit"): {
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": 1000,
    },
    ("DiscardDeadLettersRequest", "dlq_ids"): {"type": "array", "items": _UUID, "minItems": 1},
    ("GetEventLineageRequest", "event_id"): _UUID,
}
_WKT: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string"},
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array", "items": {}},
}


class Generator:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.files = list(fds.file)
        for f in self.files:
            for m in f.message_type:
                self._index(f".{f.package}", m)
            for e in f.enum_type:
                self.enums[f".{f.package}.{e.name}"] = e
        self.schemas: dict[str, dict[str, Any]] = {}

    def _index(self, prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{m.name}"
        self.messages[name] = m
        for nested in m.nested_type:
            self._index(name, nested)
        for e in m.enum_type:
            self.enums[f"{name}.{e.name}"] = e

    def field_schema(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if field.type == F.TYPE_MESSAGE:
            entry = self.messages.get(field.type_name)
            if entry is not None and entry.options.map_entry:
                return {"type": "object", "additionalProperties": self.field_schema(entry.field[1])}
        one = self._single(field)
        if field.label == F.LABEL_REPEATED:
            return {"type": "array", "items": one}
        return one

    def _single(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if field.type == F.TYPE_MESSAGE:
            if field.type_name in _WKT:
                return dict(_WKT[field.type_name])
            return {"$ref": f"#/components/schemas/{self.ref(field.type_name)}"}
        if field.type == F.TYPE_ENUM:
            enum = self.enums[field.type_name]
            return {"type": "string", "enum": [v.name for v in enum.value]}
        return dict(_SCALARS[field.type])

    def ref(self, type_name: str) -> str:
        short = type_name.rsplit(".", 1)[-1]
        if short not in self.schemas:
            self.schemas[short] = {}  # placeholder first: messages may refer to themselves
            self.schemas[short] = self.message_schema(type_name)
        return short

    def ruled(self, message: str, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        schema = self.field_schema(field)
        rule = FIELD_RULES.get((message, field.name))
        return {**schema, **rule} if rule else schema

    def message_schema(self, type_name: str, *, drop: set[str] | None = None) -> dict[str, Any]:
        m = self.messages[type_name]
        props = {f.name: self.ruled(m.name, f) for f in m.field if not drop or f.name not in drop}
        return {"type": "object", "properties": props, "additionalProperties": False}

    def query_params(
        self, type_name: str, skip: set[str], prefix: str = ""
    ) -> list[dict[str, Any]]:
        params = []
        for f in self.messages[type_name].field:
            name = prefix + f.name
            if name in skip:
                continue
            # A json_name set in the proto (e.g. "from") is the name users see.
            custom = f.json_name and f.json_name != _camel(f.name)
            name = prefix + f.json_name if custom else name
            if name in skip:
                continue
            if f.type == F.TYPE_MESSAGE and f.type_name not in _WKT:
                params += self.query_params(f.type_name, skip, name + ".")
                continue
            schema = self.ruled(self.messages[type_name].name, f)
            param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
            if schema.get("type") == "array":
                param.update(style="form", explode=True)
            params.append(param)
        return params

    def document(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for f in self.files:
            if f.package != PACKAGE:
                continue
            for svc in f.service:
                for method in svc.method:
                    rule = method.options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    if verb is None or verb == "custom":
                        continue
                    template = getattr(rule, verb)
                    path_vars = re.findall(r"{([^}=]+)(?:=[^}]*)?}", template)
                    path = re.sub(r"{([^}=]+)=[^}]*}", r"{\1}", template)
                    paths.setdefault(path, {})[verb] = self.operation(
                        svc.name, method, verb, path, set(path_vars), rule.body
                    )
        paths["/health"] = {
            "get": {
                "operationId": "Health",
                "summary": "Health of every service, from Envoy's active gRPC health checks",
                "tags": ["Edge"],
                "security": [],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Health"}, "every service SERVING"),
                    "503": _json({"$ref": "#/components/schemas/Health"}, "names what is not"),
                },
            }
        }
        self.schemas["Error"] = {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer", "description": "gRPC status code"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {}},
            },
        }
        self.schemas["Health"] = {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
                "unhealthy": {"type": "array", "items": {"type": "string"}},
                "message": {"type": "string"},
                "auth": {
                    "type": "string",
                    "enum": ["disabled"],
                    "description": "present only when the edge runs without authentication",
                },
                "warning": {"type": "string"},
            },
        }
        return {
            "openapi": "3.0.3",
            "info": {
                "title": "Cornjacket HTTP/JSON API",
                "version": "v1",
                "description": "Generated from proto/ by scripts/openapi.py (make gen); "
                "served by Envoy's gRPC-JSON transcoder.",
            },
            "security": [{"bearer": []}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "A JWT of the configured issuer and audience whose "
                        "space-separated `scope` claim holds the operation's scope "
                        "(x-required-scope): events:write, read or admin. Locally: "
                        "`cornjacket token` or `cornjacket token create`.",
                    }
                },
            },
        }

    def operation(
        self,
        service: str,
        method: descriptor_pb2.MethodDescriptorProto,
        verb: str,
        path: str,
        path_vars: set[str],
        body: str,
    ) -> dict[str, Any]:
        req = self.messages[method.input_type]
        by_name = {f.name: f for f in req.field}
        params: list[dict[str, Any]] = [
            {"name": v, "in": "path", "required": True, "schema": self.ruled(req.name, by_name[v])}
            for v in sorted(path_vars)
        ]
        op: dict[str, Any] = {
            "operationId": f"{service}_{method.name}",
            "tags": [service],
        }
        if body == "*":
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": self.message_schema(method.input_type, drop=path_vars)
                    }
                },
            }
        elif not body:
            params += self.query_params(method.input_type, path_vars)
        if params:
            op["parameters"] = params
        ok = "202" if (verb, path) in ACCEPTED_202 else "200"
        responses = {ok: _json({"$ref": f"#/components/schemas/{self.ref(method.output_type)}"})}
        if method.server_streaming:
            # Envoy prints a server stream as Server-Sent Events: one "data: {json}" line per
            # message of this schema (print_options.stream_sse_style_delimited; ADR 21).
            responses[ok] = {
                "description": "Server-Sent Events: each `data:` line is one message of this "
                f"schema ({self.ref(method.output_type)}), JSON",
                "content": {
                    "text/event-stream": {
                        # each event: its data is one JSON message of the method's output
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": {
                                        "$ref": "#/components/schemas/"
                                        + self.ref(method.output_type)
                                    },
                                },
                                "event": {"type": "string"},
                            },
                        }
                    }
                },
            }
        for code, why in ERRORS.items():
            responses[code] = _json({"$ref": "#/components/schemas/Error"}, why)
        scope = _scope(service, method.name)
        for code, why in AUTH_ERRORS.items():
            responses[code] = _json({"$ref": "#/components/schemas/Error"}, why.format(scope=scope))
        responses["401"]["headers"] = {
            "WWW-Authenticate": {
                "description": 'Bearer realm="cornjacket" (with error="invalid_token" when a '
                "token was sent)",
                "schema": {"type": "string"},
            }
        }
        op["x-required-scope"] = scope
        op["description"] = f"Needs a bearer token with the `{scope}` scope."
        op["responses"] = responses
        return op


def _scope(service: str, method: str = "") -> str:
    """The scope Envoy's RBAC filter asks of ``method`` of ``service``: the method's own
    (a service whose methods need different scopes lists them one by one), else the
    service's."""
    for scope, prefixes in ROUTE_SCOPES.items():
        if method and f"/{PACKAGE}.{service}/{method}" in prefixes:
            return scope
    for scope, prefixes in ROUTE_SCOPES.items():
        if f"/{PACKAGE}.{service}/" in prefixes:
            return scope
    raise SystemExit(f"{service} has no scope in services/cli/envoy_config.ROUTE_SCOPES")


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def main() -> int:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(DESCRIPTOR.read_bytes())
    _ = annotations_pb2
    doc = Generator(fds).document()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(doc['paths'])} paths)")
    return 0


def _camel(name: str) -> str:
    """protoc's default json_name: lower camel case of the field name."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


if __name__ == "__main__":
    sys.exit(main())
