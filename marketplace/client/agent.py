"""A reference provider agent that simulates a provider's machines.

It provisions every scheduled lease at once (acknowledge, then ready with made-up access details),
then every ``--interval`` seconds reports, for each active lease, a heartbeat (``units_up`` = the
lease's units) and a usage event, in one signed batch. It can be told to drop heartbeats
(``--drop-heartbeats 0.2`` loses a fifth of them) or to fail each lease ``--fail-after`` seconds
after it became active. Tests, the demo and providers use it; ``--once`` runs one cycle.

``ProviderAgent`` uses only the standard library (``urllib``, ``hmac``, ``json``): providers may
copy it into their own tooling as it is. ``manage.py run_provider_agent`` is its Django wrapper
(``marketplace/management/commands/run_provider_agent.py``).

Signing: ``X-Suanli-Signature: sha256=<hex>`` is HMAC-SHA256 of the raw body, keyed with the SHA-256
hex digest of the key's secret (the part after ``sx_<prefix>_``); the exchange stores exactly that
digest, so both sides know the signing key without the secret itself being stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

# (method, url, headers, body) → (HTTP status, response body)
Transport = Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]
HEARTBEAT = "com.suanli.heartbeat"
USAGE = "com.suanli.usage"
MAX_BATCH = 1000


def urllib_transport(
    method: str, url: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked above
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class AgentError(RuntimeError):
    pass


class ProviderAgent:
    """One provider agent: an API key with the ``provider-agent`` scope and a base URL."""

    def __init__(
        self,
        *,
        url: str,
        key: str,
        source: str | None = None,
        drop_heartbeats: float = 0.0,
        fail_after: float | None = None,
        transport: Transport = urllib_transport,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        rng: random.Random | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "sx":
            raise AgentError("the API key reads sx_<prefix>_<secret>")
        self.base = url.rstrip("/") + "/api/v1"
        self.key = key
        # The exchange stores SHA-256(secret) as hex; that digest is the HMAC key.
        self.signing_key = hashlib.sha256(parts[2].encode()).hexdigest().encode()
        self.source = source or f"suanli-reference-agent/{socket.gethostname()}"
        self.drop_heartbeats = drop_heartbeats
        self.fail_after = fail_after
        self.transport = transport
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - simulation, not security
        self.log = log
        self.active_since: dict[str, dt.datetime] = {}

    # ----------------------------------------------------------------------- HTTP

    def call(self, method: str, path: str, payload: Any = None, *, sign: bool = False) -> Any:
        url = path if path.startswith("http") else self.base + path
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if sign:
            digest = hmac.new(self.signing_key, body or b"", hashlib.sha256).hexdigest()
            headers["X-Suanli-Signature"] = f"sha256={digest}"
        status, content = self.transport(method, url, headers, body)
        try:
            answer = json.loads(content) if content else None
        except ValueError:  # not JSON: a proxy's error page, say
            answer = None
        if not 200 <= status < 300:
            error = (answer or {}).get("error", {}) if isinstance(answer, dict) else {}
            raise AgentError(
                f"{method} {path}: {status} {error.get('code')} {error.get('message')}"
            )
        return answer

    def leases(self, status: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page: str | None = f"/agent/leases?status={status}&limit=500"
        while page:
            answer = self.call("GET", page)
            found.extend(answer["data"])
            page = answer["next"]
        return found

    # ----------------------------------------------------------------------- one cycle

    def cycle(self) -> dict[str, int]:
        """Provision what is scheduled, fail what is due to fail, report the rest once."""
        counts = {"provisioned": 0, "failed": 0, "events": 0, "accepted": 0}
        for lease in self.leases("scheduled"):
            self._try("POST", f"/agent/leases/{lease['id']}/acknowledge", None)
        for lease in self.leases("provisioning"):
            if self._try("POST", f"/agent/leases/{lease['id']}/ready", self._access(lease)):
                counts["provisioned"] += 1
                self.log(f"lease {lease['id']}: active")
        now = self.clock()
        reporting = []
        for lease in self.leases("active"):
            since = self.active_since.setdefault(lease["id"], now)
            due = self.fail_after is not None and (now - since).total_seconds() >= self.fail_after
            if due and self._try(
                "POST", f"/agent/leases/{lease['id']}/fail", {"reason": "simulated_failure"}
            ):
                counts["failed"] += 1
                self.log(f"lease {lease['id']}: failed (simulated)")
                continue
            reporting.append(lease)
        events = [event for lease in reporting for event in self._events(lease, now)]
        for start in range(0, len(events), MAX_BATCH):
            batch = events[start : start + MAX_BATCH]
            answer = self.call("POST", "/agent/events", {"events": batch}, sign=True)
            counts["events"] += len(batch)
            counts["accepted"] += answer["accepted"]
        return counts

    def _try(self, method: str, path: str, payload: Any) -> Any:
        """A lease may change under us (the buyer cancels it): log the refusal and move on."""
        try:
            return self.call(method, path, payload)
        except AgentError as error:
            self.log(str(error))
            return None

    def _access(self, lease: dict[str, Any]) -> dict[str, Any]:
        short = lease["id"].split("-")[0]
        return {
            "access": {
                "ssh": f"ssh -p 2222 lease-{short}@{lease['pool_name']}.agent.invalid",
                "password": hashlib.sha256(f"{self.key}:{lease['id']}".encode()).hexdigest()[:20],
                "notes": f"{lease['units']} × {lease['device_model']} (simulated)",
            }
        }

    def _events(self, lease: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        common = {
            "specversion": "1.0",
            "source": self.source,
            "subject": lease["subject"],
            "time": now.isoformat().replace("+00:00", "Z"),
        }
        events = []
        if self.rng.random() >= self.drop_heartbeats:
            events.append(
                {
                    **common,
                    "id": f"hb/{lease['id']}/{stamp}",
                    "type": HEARTBEAT,
                    "data": {"units_up": lease["units"]},
                }
            )
        events.append(
            {
                **common,
                "id": f"usage/{lease['id']}/{stamp}",
                "type": USAGE,
                "data": {
                    "units": lease["units"],
                    "devices": lease["units"] * lease["devices_per_unit"],
                },
            }
        )
        return events

    def run(self, *, interval: float, once: bool = False) -> None:
        while True:
            started = time.monotonic()
            try:
                counts = self.cycle()
                self.log(" ".join(f"{name}={value}" for name, value in counts.items()))
            except (AgentError, OSError) as error:  # the exchange is down: try again next time
                self.log(f"cycle failed: {error}")
                if once:
                    raise
            if once:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
