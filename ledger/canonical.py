"""Tamper evidence, pure functions only (no Django, no database): a regulator's offline verifier
uses exactly this module.

Encoding v1 of a transfer is a JSON object with these keys, sorted, no whitespace, ASCII only:
``v`` (1), ``seq``, ``id`` (UUID, lowercase), ``kind``, ``debit`` and ``credit`` (account ids),
``amount`` (integer minor units), ``currency``, ``pending`` (UUID or null), ``timeout`` (seconds or
null), ``linked``, ``code``, ``ts`` (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``) and ``meta`` (an object).

Chain: ``h[0]`` is 32 zero bytes; ``h[n] = SHA-256(h[n-1] || encoding(transfer n))``.

Checkpoints: the RFC 6962 Merkle tree hash of the encodings of transfers ``first..last`` (leaf
``SHA-256(0x00 || leaf)``, node ``SHA-256(0x01 || left || right)``, split at the largest power of
two below n), signed with Ed25519 over ``checkpoint_message()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

VERSION = 1
GENESIS = bytes(32)


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("ledger timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_transfer(
    *,
    seq: int,
    id: str,
    kind: str,
    debit: int,
    credit: int,
    amount: int,
    currency: str,
    pending: str | None,
    timeout: int | None,
    linked: bool,
    code: int,
    ts: dt.datetime,
    meta: dict[str, Any],
) -> bytes:
    record = {
        "v": VERSION,
        "seq": seq,
        "id": str(id).lower(),
        "kind": kind,
        "debit": debit,
        "credit": credit,
        "amount": amount,
        "currency": currency,
        "pending": str(pending).lower() if pending is not None else None,
        "timeout": timeout,
        "linked": linked,
        "code": code,
        "ts": _timestamp(ts),
        "meta": meta,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_row(seq: int, row: Sequence[Any]) -> bytes:
    """``encode_transfer`` for a row of text-ish columns (``ledger.services.ROW_SQL``), byte for
    byte, but fast: the
    verifier and the sealer run it a million times (a test holds the two equal)."""
    (id_, kind, debit, credit, amount, currency, pending, timeout, linked, code, ts, meta) = row
    if meta == "{}":
        meta_json = "{}"
    else:  # jsonb prints its own key order and spacing: re-encode canonically
        meta_json = json.dumps(json.loads(meta), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=True)  # fmt: skip
    pending_json = f'"{pending}"' if pending is not None else "null"
    timeout_json = "null" if timeout is None else str(timeout)
    linked_json = "true" if linked else "false"
    return (
        f'{{"amount":{amount},"code":{code},"credit":{credit},"currency":"{currency}",'
        f'"debit":{debit},"id":"{id_}","kind":"{kind}","linked":{linked_json},"meta":{meta_json},'
        f'"pending":{pending_json},"seq":{seq},"timeout":{timeout_json},"ts":"{ts}","v":{VERSION}}}'
    ).encode()


def key_id(public_key: bytes) -> str:
    """A short, stable name for a signing key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def chain(previous: bytes, encoding: bytes) -> bytes:
    return hashlib.sha256(previous + encoding).digest()


def leaf_hash(encoding: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + encoding).digest()


def merkle_root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash, given the leaves' hashes (iterative, same result)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    # Combine bottom-up along the RFC's left-balanced shape: split at the largest power of two.
    level = list(hashes)
    return _mth(level, 0, len(level))


def _mth(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return hashes[start]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two strictly less than n
    left = _mth(hashes, start, start + k)
    right = _mth(hashes, start + k, end)
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    return merkle_root_of_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


@dataclass(frozen=True)
class CheckpointFields:
    number: int
    first_seq: int
    last_seq: int
    merkle_root: str
    previous_root: str
    last_chain_hash: str

    def message(self) -> bytes:
        """What the Ed25519 signature covers (versioned, canonical JSON)."""
        body = {
            "v": VERSION,
            "number": self.number,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "merkle_root": self.merkle_root,
            "previous_root": self.previous_root,
            "last_chain_hash": self.last_chain_hash,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class VerifyReport:
    transfers: int = 0
    checkpoints: int = 0
    first_bad_seq: int | None = None
    problems: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str, seq: int | None = None) -> None:
        if self.problems is None:
            self.problems = []
        self.problems.append(problem)
        if seq is not None and (self.first_bad_seq is None or seq < self.first_bad_seq):
            self.first_bad_seq = seq


def verify_chain(
    records: Iterable[tuple[int, bytes, str | None]],
    checkpoints: Iterable[CheckpointFields],
    signatures: dict[int, tuple[bytes, bytes]],
    public_key: bytes | None,
    report: VerifyReport,
) -> None:
    """Verify ``(seq, encoding, stored_chain_hash_hex_or_None)`` in seq order and checkpoints.

    ``signatures`` maps a checkpoint number to (signature, signer's raw public key). With a
    ``public_key`` given, every checkpoint must be signed by it.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pending = iter(sorted(checkpoints, key=lambda c: c.number))
    checkpoint = next(pending, None)
    head = GENESIS
    expected_seq = 1
    leaves: list[bytes] = []
    previous_root = ""
    for seq, encoding, stored in records:
        report.transfers += 1
        if seq != expected_seq:
            report.fail(f"sequence gap: expected {expected_seq}, found {seq}", expected_seq)
            return
        head = chain(head, encoding)
        if stored is not None and stored != head.hex():
            report.fail(f"chain hash mismatch at seq {seq}", seq)
            return
        if checkpoint is not None and seq >= checkpoint.first_seq:
            leaves.append(leaf_hash(encoding))
        while checkpoint is not None and seq == checkpoint.last_seq:
            root = merkle_root_of_leaf_hashes(leaves).hex()
            report.checkpoints += 1
            if root != checkpoint.merkle_root:
                report.fail(
                    f"checkpoint {checkpoint.number}: Merkle root mismatch", checkpoint.first_seq
                )
            if checkpoint.previous_root != previous_root:
                report.fail(
                    f"checkpoint {checkpoint.number}: previous root does not link",
                    checkpoint.first_seq,
                )
            if checkpoint.last_chain_hash != head.hex():
                report.fail(f"checkpoint {checkpoint.number}: chain head mismatch", seq)
            signature, signer = signatures.get(checkpoint.number, (b"", b""))
            key = public_key or signer
            try:
                if public_key is not None and signer and signer != public_key:
                    raise InvalidSignature
                Ed25519PublicKey.from_public_bytes(key).verify(signature, checkpoint.message())
            except (InvalidSignature, ValueError):
                report.fail(f"checkpoint {checkpoint.number}: bad signature", checkpoint.first_seq)
            previous_root = checkpoint.merkle_root
            leaves = []
            checkpoint = next(pending, None)
        expected_seq += 1
    if checkpoint is not None:
        report.fail(
            f"checkpoint {checkpoint.number} covers transfers that are missing",
            checkpoint.first_seq,
        )


def encoded_seq(encoding: bytes) -> int:
    """The ``seq`` an encoding states (read without a full JSON parse: the verifier's hot path)."""
    start = encoding.find(b'"seq":')
    if start < 0:
        raise ValueError("record has no seq")
    start += 6
    end = encoding.find(b",", start)
    return int(encoding[start:end])


def read_export(
    path: str, chain_path: str | None = None
) -> Iterator[tuple[int, bytes, str | None]]:
    """Lines of an export's transfers file (each exactly the canonical encoding), with the chain
    hash the exporter stored for it when a chain file is given (it localizes an edited line; the
    signed checkpoints are what make the export trustworthy)."""
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(path, "rb"))
        hashes = stack.enter_context(open(chain_path)) if chain_path else None
        for line in handle:
            encoding = line.rstrip(b"\n")
            stored = hashes.readline().strip() if hashes is not None else None
            yield encoded_seq(encoding), encoding, stored
