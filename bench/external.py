"""Benchmarking a stack that is already running (`make run`, `cornjacket up`, or another
machine's Envoy): where its processes are, for the per-process CPU and memory columns."""

from __future__ import annotations

from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

from services.cli.stack import OPTIONAL_SERVICES, SERVICES


def _name(cmdline: list[str], exe_name: str, parent_name: str) -> str | None:
    if "serve" in cmdline:
        i = cmdline.index("serve")
        if i + 1 < len(cmdline) and cmdline[i + 1] in (*SERVICES, *OPTIONAL_SERVICES):
            return cmdline[i + 1]
    if exe_name == "postgres" and parent_name != "postgres":
        return "postgres"  # the postmaster; its backends are its children
    first = cmdline[0] if cmdline else ""
    if "tansu" in first and "broker" in cmdline:
        return "broker"
    if first.endswith("/envoy") or exe_name == "envoy":
        return "envoy"
    return None


def local_stack_processes() -> dict[str, int]:
    """Display name -> root pid of the stack's processes on this machine (the oldest of each
    kind, when several stacks run). Empty when the stack runs elsewhere."""
    found: dict[str, tuple[float, int]] = {}
    names: dict[int, str] = {}
    procs: list[Any] = list(psutil.process_iter(["pid", "ppid", "name", "cmdline", "create_time"]))
    for p in procs:
        names[p.info["pid"]] = p.info["name"] or ""
    for p in procs:
        info = p.info
        name = _name(info["cmdline"] or [], info["name"] or "", names.get(info["ppid"], ""))
        if name is None:
            continue
        seen = found.get(name)
        if seen is None or info["create_time"] < seen[0]:
            found[name] = (info["create_time"], info["pid"])
    return {name: pid for name, (_, pid) in found.items()}
