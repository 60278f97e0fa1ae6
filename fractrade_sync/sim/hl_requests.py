"""What reached the simulator: every request counted by path and type, and every /exchange request recorded with its
answer (exchange_log). Thread-safe: handler threads write, tests read copies.
"""

from __future__ import annotations

import collections
import json
import threading


class RequestLog:
    def __init__(self):
        self._lock = threading.Lock()
        self._log: list[dict] = []
        self._counts: collections.Counter = collections.Counter()

    def count(self, path: str, body) -> None:
        kind = None
        if isinstance(body, dict):
            action = body.get("action")
            kind = action.get("type") if isinstance(action, dict) else body.get("type", body.get("op"))
        with self._lock:
            self._counts[(path, kind)] += 1

    def record(self, body, status: int, response, fault: str | None, signer=None) -> None:
        """Record one /exchange request: what it asked, who signed it, and how it was answered."""
        action = body.get("action") if isinstance(body, dict) else None
        if isinstance(response, dict) and response.get("status") == "err":
            errors = [response.get("response")]
        elif isinstance(response, dict) and response.get("status") == "ok":
            statuses = (response["response"].get("data") or {}).get("statuses", [])
            errors = [s["error"] for s in statuses if isinstance(s, dict) and "error" in s]
        else:
            errors = [response]
        entry = {
            "action_type": action.get("type") if isinstance(action, dict) else None,
            # an order action's grouping as sent ("na", "normalTpsl", "positionTpsl"; hl_grouping), else None
            "grouping": action.get("grouping") if isinstance(action, dict) and action.get("type") == "order" else None,
            "nonce": body.get("nonce") if isinstance(body, dict) else None,
            "expiresAfter": body.get("expiresAfter") if isinstance(body, dict) else None,
            "vaultAddress": body.get("vaultAddress") if isinstance(body, dict) else None,
            "signer": signer,
            "http_status": status,
            "ok": status == 200 and isinstance(response, dict) and response.get("status") == "ok",
            "errors": errors,
            "response": response,
            "fault": fault,
        }
        with self._lock:
            self._log.append(entry)

    def exchange_log(self) -> list[dict]:
        with self._lock:
            return json.loads(json.dumps(self._log))

    def request_count(self, path: str = "/exchange", type: str | None = None) -> int:
        with self._lock:
            return sum(n for (p, t), n in self._counts.items() if p == path and type in (None, t))

    def counts(self, path: str) -> dict:
        """Requests on one path, by type."""
        with self._lock:
            return {t: n for (p, t), n in self._counts.items() if p == path}
