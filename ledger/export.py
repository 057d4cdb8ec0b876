"""Export the sealed chain for offline verification, and verify such an export without Django.

An export is a directory with ``transfers.jsonl`` (each line exactly the canonical encoding of
one transfer, in seq order), ``chain.txt`` (the chain hash after each line, hex) and
``checkpoints.jsonl`` (one JSON object per signed checkpoint).

    python -m ledger.export verify DIR [--public-key HEX]     # needs no database, no Django
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ledger import canonical


def verify_export(directory: Path, *, public_key: bytes | None = None) -> canonical.VerifyReport:
    checkpoints: list[canonical.CheckpointFields] = []
    signatures: dict[int, tuple[bytes, bytes]] = {}
    path = directory / "checkpoints.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            item = json.loads(line)
            fields = canonical.CheckpointFields(
                **{k: item[k] for k in canonical.CheckpointFields.__dataclass_fields__}
            )
            checkpoints.append(fields)
            signatures[fields.number] = (
                bytes.fromhex(item["signature"]),
                bytes.fromhex(item["public_key"]),
            )
    report = canonical.VerifyReport()
    chain = directory / "chain.txt"
    records = canonical.read_export(
        str(directory / "transfers.jsonl"), str(chain) if chain.exists() else None
    )
    canonical.verify_chain(records, checkpoints, signatures, public_key, report)
    return report


def export_ledger(directory: Path) -> tuple[int, int]:
    """Write the sealed chain and checkpoints (needs Django); returns (transfers, checkpoints)."""
    from ledger.models import Checkpoint
    from ledger.verify import chain_records

    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with (
        open(directory / "transfers.jsonl", "wb") as handle,
        open(directory / "chain.txt", "w") as hashes,
    ):
        for _seq, encoding, chain_hash in chain_records():
            handle.write(encoding + b"\n")
            hashes.write(f"{chain_hash}\n")
            count += 1
    fields = [*canonical.CheckpointFields.__dataclass_fields__, "signature", "public_key"]
    rows = list(Checkpoint.objects.order_by("number").values(*fields))
    with open(directory / "checkpoints.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    return count, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.export")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify an export directory offline")
    check.add_argument("directory", type=Path)
    check.add_argument("--public-key", help="hex Ed25519 key every checkpoint must be signed by")
    args = parser.parse_args(argv)
    key = bytes.fromhex(args.public_key) if args.public_key else None
    report = verify_export(args.directory, public_key=key)
    for problem in report.problems or []:
        print(problem, file=sys.stderr)
    if not report.ok:
        print(f"FAILED: first bad seq {report.first_bad_seq}", file=sys.stderr)
        return 1
    print(f"OK: {report.transfers} transfers, {report.checkpoints} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
