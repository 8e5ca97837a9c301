"""`llm-console audit …`: verify, list and export the tamper-evident audit log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from console.access.audit_log import AuditLog
from console.access.principal import Principal


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    audit_sub.add_parser("verify", help="check the hash chain; names the first edited or deleted entry")
    listing = audit_sub.add_parser("list", help="entries, newest first")
    listing.add_argument("--actor")
    listing.add_argument("--action", help="action prefix, e.g. auth. or model.load")
    listing.add_argument("--outcome", choices=("ok", "denied", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    export = audit_sub.add_parser("export", help="all entries as CSV")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    if args.audit_command == "verify":
        result = core.verify_audit(principal)
        if result.ok:
            print(f"The audit log is intact: {result.entries} entries, every hash and link checks out.")
            return 0
        print(f"The audit log was tampered with: {result.problem}.", file=sys.stderr)
        return 1
    if args.audit_command == "list":
        for entry in core.audit_entries(principal, actor=args.actor, action=args.action, outcome=args.outcome,
                                        limit=args.limit):
            print(f"{entry.seq:>6} {entry.at[:19]} {entry.actor:<16} {entry.outcome:<7} {entry.action:<22} {entry.target} {entry.details}")
        return 0
    text = AuditLog.to_csv(core.audit_entries(principal))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
