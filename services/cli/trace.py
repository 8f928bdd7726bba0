"""`cornjacket trace <event_id>`: every hop an event made, from the lineage API."""

from __future__ import annotations

import argparse
import sys

import grpc
from cornjacket.v1 import lineage_pb2, lineage_pb2_grpc

from services.cli.auth import edge_channel


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "trace",
        help="where is event X: accepted, stored, published, projected, dead-lettered",
        description="Asks LineageService through Envoy (a running stack).",
    )
    p.add_argument("event_id")
    p.add_argument("--edge", default="", help="Envoy host:port (default 127.0.0.1:$CJ_EDGE_PORT)")


def run(args: argparse.Namespace, default_edge: str, token: str = "") -> int:  # nosec B107
    with edge_channel(args.edge or default_edge, token) as channel:
        stub = lineage_pb2_grpc.LineageServiceStub(channel)
        try:
            lineage = stub.GetEventLineage(
                lineage_pb2.GetEventLineageRequest(event_id=args.event_id), timeout=30
            )
        except grpc.RpcError as e:
            print(f"cornjacket: error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    ev = lineage.event
    print(f"event {ev.event_id}  {ev.event_type}  aggregate {ev.aggregate_id}")
    for hop in lineage.hops:
        when = (
            hop.at.ToDatetime().isoformat(timespec="milliseconds") + "Z"
            if hop.HasField("at")
            else "-"
        )
        print(f"  {hop.stage:<12} {hop.status:<10} {when:<25} {hop.detail}")
    return 0
