"""`cornjacket dlq ...`: operate the event handler's dead-letter queue through the edge."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

import grpc
from cornjacket.v1 import dlq_pb2, dlq_pb2_grpc
from google.protobuf import json_format

from services.cli.auth import edge_channel


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="list, show, replay or discard the event handler's dead letters",
        description="Talks to the DeadLetterService through Envoy (a running stack).",
    )
    dlq.add_argument(
        "--edge", default="", help="Envoy host:port (default 127.0.0.1:$CJ_EDGE_PORT or 8080)"
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="dead letters, newest first")
    _filters(ls)
    ls.add_argument("--limit", type=int, default=20, help="1..100 (default 20)")
    ls.add_argument("--offset", type=int, default=0)
    show = actions.add_parser("show", help="one dead letter, as JSON")
    show.add_argument("dlq_id")
    replay = actions.add_parser(
        "replay", help="send dead letters through the projectors again (ids, or --all-pending)"
    )
    replay.add_argument("dlq_ids", nargs="*")
    replay.add_argument(
        "--all-pending", action="store_true", help="every pending one the filters select"
    )
    _filters(replay, status=False)
    replay.add_argument(
        "--limit",
        type=int,
        default=100,
        help="with --all-pending: at most this many (1..1000); named ids (1000 at most) "
        "are all handled",
    )
    discard = actions.add_parser("discard", help="mark pending dead letters discarded")
    discard.add_argument("dlq_ids", nargs="+")


def _filters(p: argparse.ArgumentParser, *, status: bool = True) -> None:
    p.add_argument("--consumer", default="", help="e.g. event-handler")
    if status:
        p.add_argument("--status", default="", choices=("", "pending", "replayed", "discarded"))
    p.add_argument(
        "--since", type=_time, help="failed at or after (ISO 8601, e.g. 2026-11-27T10:00Z)"
    )
    p.add_argument("--until", type=_time, help="failed at or before")


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. Z or +01:00")
    return t


def _filter(args: argparse.Namespace) -> dlq_pb2.DeadLetterFilter:
    f = dlq_pb2.DeadLetterFilter(consumer=args.consumer, status=getattr(args, "status", ""))
    if args.since:
        f.failed_since.FromDatetime(args.since)
    if args.until:
        f.failed_until.FromDatetime(args.until)
    return f


def run(args: argparse.Namespace, default_edge: str, token: str = "") -> int:  # nosec B107
    with edge_channel(args.edge or default_edge, token) as channel:
        stub = dlq_pb2_grpc.DeadLetterServiceStub(channel)
        try:
            return _run(stub, args)
        except grpc.RpcError as e:
            print(f"cornjacket: error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1


def _run(stub: dlq_pb2_grpc.DeadLetterServiceStub, args: argparse.Namespace) -> int:
    cmd = args.dlq_command
    if cmd == "list":
        resp = stub.ListDeadLetters(
            dlq_pb2.ListDeadLettersRequest(
                filter=_filter(args), limit=args.limit, offset=args.offset
            ),
            timeout=30,
        )
        print(f"{resp.total} dead letter(s); showing {len(resp.dead_letters)} from {resp.offset}")
        for d in resp.dead_letters:
            when = d.failed_at.ToDatetime().isoformat(timespec="seconds")
            print(
                f"{d.dlq_id}  {d.status:<9} {when}Z  {d.consumer}  "
                f"{d.event_type or '?'}/{d.aggregate_id or '?'}  retries={d.retry_count}  "
                f"{d.error_message[:80]}"
            )
        return 0
    if cmd == "show":
        d = stub.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=args.dlq_id), timeout=30)
        print(json.dumps(json_format.MessageToDict(d, preserving_proto_field_name=True), indent=2))
        return 0
    if cmd == "replay":
        if not args.dlq_ids and not args.all_pending:
            print("cornjacket: error: name dlq ids or pass --all-pending", file=sys.stderr)
            return 2
        req = dlq_pb2.ReplayDeadLettersRequest(dlq_ids=args.dlq_ids, limit=args.limit)
        if not args.dlq_ids:
            req.filter.CopyFrom(_filter(args))
        replayed = stub.ReplayDeadLetters(req, timeout=120)
        for o in replayed.outcomes:
            print(f"{o.dlq_id}  {o.status}" + (f"  {o.error}" if o.error else ""))
        print(f"replayed {replayed.replayed}, failed {replayed.failed}")
        return 0 if replayed.failed == 0 else 1
    discarded = stub.DiscardDeadLetters(
        dlq_pb2.DiscardDeadLettersRequest(dlq_ids=args.dlq_ids), timeout=30
    )
    for o in discarded.outcomes:
        print(f"{o.dlq_id}  {o.status}" + (f"  {o.error}" if o.error else ""))
    return 0
