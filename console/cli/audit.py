"""`llm-console audit …`: verify, list and export the tamper-evident audit log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from console.access.audit_log import AuditHead, AuditHeadError, AuditLog, printable
from console.access.principal import Principal


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_sub.add_parser("verify", help="check the hash chain and its head; names the first edited or deleted entry")
    verify.add_argument("--head", metavar="FILE", help="also check that the log still holds a head exported earlier")
    head = audit_sub.add_parser("export-head", help="the newest entry's number and hash as JSON, to keep off this machine")
    head.add_argument("-o", "--output", help="file to write (default: standard output)")
    listing = audit_sub.add_parser("list", help="entries, newest first")
    listing.add_argument("--actor")
    listing.add_argument("--action", help="action prefix, e.g. auth. or model.load")
    listing.add_argument("--outcome", choices=("ok", "denied", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    export = audit_sub.add_parser("export", help="all entries as CSV")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    if args.audit_command == "verify":
        exported = None
        if args.head:
            try:
                exported = AuditHead.parse(Path(args.head).read_text(encoding="utf-8"), args.head)
            except OSError as error:
                raise AuditHeadError(f"Cannot read {args.head}: {error.strerror}.") from None
        result = core.verify_audit(principal, exported)
        if result.ok:
            print(f"The audit log is intact: {result.entries} entries, every hash and link checks out.")
            return 0
        print(f"The audit log was tampered with: {result.problem}.", file=sys.stderr)
        return 1
    if args.audit_command == "export-head":
        return write_out(core.export_audit_head(principal).to_json(), args.output,
                         f"Wrote the audit head to {args.output}; keep a copy off this machine.")
    if args.audit_command == "list":
        for entry in core.audit_entries(principal, actor=args.actor, action=args.action, outcome=args.outcome,
                                        limit=args.limit):
            # escaped: fields written before names were cleaned (or by an intruder) must not drive the terminal
            print(f"{entry.seq:>6} {printable(entry.at[:19])} {printable(entry.actor):<16} {printable(entry.outcome):<7} "
                  f"{printable(entry.action):<22} {printable(entry.target)} {printable(entry.details, 2000)}")
        return 0
    return write_out(AuditLog.to_csv(core.audit_entries(principal)), args.output, f"Wrote {args.output}")


def write_out(text: str, output: str | None, done: str) -> int:
    """`text` to the file `output` (saying `done` on standard error), or to standard output."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(done, file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
