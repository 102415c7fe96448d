"""The REST API client (docs/openapi.yaml): publish, history, presence, the server API, info and health."""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping

from .errors import TransportError, error_for


class Client:
    """One Broadcaster node (or the load balancer in front of several), reached over HTTP(S).

    `base_url` includes the base path, e.g. "http://127.0.0.1:8000/broadcaster". `api_key` is one of the server's
    API_KEYS, sent as `Authorization: Bearer <key>`. `timeout` bounds each HTTP request (seconds).

    A 503 answer (the broker is unreachable or too busy, the node is shutting down) is retried up to `retries`
    times, waiting the server's Retry-After when it sends one, else an exponential backoff from `backoff`
    seconds, doubling, capped at `max_backoff`, with jitter. A Retry-After longer than `max_retry_after` is not
    waited for: the UnavailableError is raised at once, carrying it. Nothing else is retried: not a 4xx, not a
    500, not a connection error or timeout (TransportError).

    Caution: a 503 can also mean "the broker did not answer in time: the message may or may not have been
    delivered", and each retry is a new message with a new id, so a retried publish can reach subscribers
    twice. Pass retries=0 where a duplicate is worse than an error, or put your own idempotency key in the
    payload.

    Every method is safe to call from several threads: the client keeps no per-request state."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, *, retries: int = 3,
                 backoff: float = 0.1, max_backoff: float = 2.0, max_retry_after: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if retries < 0 or backoff < 0 or max_backoff < 0 or max_retry_after < 0:
            raise ValueError("retries and the waits must not be negative")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep  # injectable so that tests can record the waits instead of waiting

    # -- the API ----------------------------------------------------------------------------------------------
    def publish(self, channel: str, data: Any, event: str = "message") -> dict:
        """POST {BASE}/publish: `data` (any JSON value) becomes the message's payload. Returns
        {"id": ..., "createTime": ...}. Data that json cannot encode (or NaN, Infinity) raises ValueError or
        TypeError before anything is sent."""
        return self._call("POST", "/publish", body={"channel": channel, "event": event, "payload": data})

    def history(self, channel: str, limit: int | None = None, since: Any = None) -> dict:
        """GET {BASE}/history: {"publications": [...], "epoch": E, "offset": O}, oldest first. `since` is a
        position, {"epoch": E, "offset": O} or (E, O): only what came after it. `limit` caps the count (0: the
        position only)."""
        query: dict[str, Any] = {"channel": channel}
        if limit is not None:
            query["limit"] = int(limit)
        if since is not None:
            epoch, offset = (since["epoch"], since["offset"]) if isinstance(since, Mapping) else since
            query["epoch"], query["offset"] = epoch, int(offset)
        return self._call("GET", "/history", query=query)

    def presence(self, channel: str) -> dict:
        """GET {BASE}/presence: {"clients": {CLIENT_ID: {"user": SUB, "info"?: INFO}}, "truncated"?: true}."""
        return self._call("GET", "/presence", query={"channel": channel})

    def presence_stats(self, channel: str) -> dict:
        """GET {BASE}/presence-stats: {"numClients": N, "numUsers": U}."""
        return self._call("GET", "/presence-stats", query={"channel": channel})

    def disconnect(self, user: str) -> dict:
        """POST {BASE}/disconnect: closes every connection of `user` (close code 4003). {"success": true}."""
        return self._call("POST", "/disconnect", body={"user": user})

    def unsubscribe(self, user: str, channel: str) -> dict:
        """POST {BASE}/unsubscribe: ends every subscription of `user` to `channel`. {"success": true}."""
        return self._call("POST", "/unsubscribe", body={"user": user, "channel": channel})

    def info(self) -> dict:
        """GET {BASE}/info: the node's id, version, uptime, counts and broker state."""
        return self._call("GET", "/info")

    def health(self) -> bool:
        """GET {BASE}/health: True when the node accepts traffic, False when it answers 503 (not ready, its broker
        unreachable, shutting down). Not retried; other answers raise."""
        status, payload, headers = self._request("GET", "/health", None, None, auth=False)
        if status == 200:
            return True
        if status == 503:
            return False
        raise error_for(status, _parse_body(payload), _retry_after(headers.get("Retry-After")))

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, body: Any = None, query: dict | None = None) -> Any:
        attempt = 0
        while True:
            status, payload, headers = self._request(method, path, body, query, auth=True)
            if 200 <= status < 300:
                try:
                    return json.loads(payload)
                except ValueError:
                    raise TransportError(f"{method} {path}: answer {status} is not JSON: {payload[:200]!r}") \
                        from None
            retry_after = _retry_after(headers.get("Retry-After"))
            error = error_for(status, _parse_body(payload), retry_after)
            if status != 503 or attempt >= self.retries:
                raise error
            if retry_after is not None:
                if retry_after > self.max_retry_after:
                    raise error
                wait = retry_after
            else:
                wait = min(self.max_backoff, self.backoff * (2 ** attempt)) * random.uniform(0.5, 1.0)
            attempt += 1
            self._sleep(wait)

    def _request(self, method: str, path: str, body: Any, query: dict | None, *, auth: bool):
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        data = None
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if body is not None:
            # allow_nan=False: NaN and Infinity are not JSON; refused here (ValueError) rather than by the server.
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return res.status, res.read(), res.headers
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read(), e.headers
        except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out, TLS failure
            reason = getattr(e, "reason", e)
            raise TransportError(f"{method} {url}: {reason}") from e


def _parse_body(payload: bytes) -> Any:
    text = payload.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date (RFC 9110 10.2.3); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
