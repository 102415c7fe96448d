"""Client tokens: HS256 JWTs with the claims `broadcaster token` puts in them (src/app/token_command.cpp)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any, Iterable

AUDIENCE = "broadcaster"
SCOPES = ("subscribe", "publish")
MAX_INFO_BYTES = 1024  # the server refuses a larger info claim (docs/protocol.md, "info claim")

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_ttl(ttl: int | str) -> int:
    """Seconds from an int, or from a string as `broadcaster token --ttl` takes it: "90", "15m", "1h", "7d"."""
    if isinstance(ttl, bool):
        raise ValueError("ttl must be a positive number of seconds")
    if isinstance(ttl, int):
        seconds = ttl
    elif isinstance(ttl, str) and re.fullmatch(r"[0-9]+[smhd]?", ttl):
        unit = _TTL_UNITS.get(ttl[-1], 1)
        seconds = int(ttl.rstrip("smhd")) * unit
    else:
        raise ValueError(f"ttl {ttl!r}: expected seconds, or a number with s, m, h or d (1h)")
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    return seconds


def mint_token(secret: str | bytes, sub: str, channels: Iterable[str] | None = None,
               scope: Iterable[str] | None = None, ttl: int | str = 3600, info: dict | None = None, *,
               now: int | None = None) -> str:
    """An HS256 JWT for one user, as `broadcaster token --sub SUB --channels ... --scope ... --ttl ... --info ...`
    prints it: claims sub, aud "broadcaster", iat, exp = iat + ttl, authorizedChannels, scope and, when given,
    info.

    `channels` must name at least one channel (the server refuses a token without); `scope` defaults to
    ["subscribe"], like the command; `info` is a JSON object, as the command requires (at most 1 KiB compact,
    the server's limit). `now` (Unix seconds) is for tests. Raises ValueError for what the command refuses."""
    if not isinstance(sub, str) or not sub:
        raise ValueError("sub must be a non-empty string")
    if isinstance(channels, str):
        raise ValueError("channels is a list of channel names, not one string")
    channel_list = list(channels or ())
    if not channel_list:
        raise ValueError("channels needs at least one channel")
    if any(not isinstance(c, str) or not c for c in channel_list):
        raise ValueError("channels: empty or non-string channel name")
    if isinstance(scope, str):
        raise ValueError("scope is a list (subscribe, publish), not one string")
    scope_list = ["subscribe"] if scope is None else list(scope)
    for s in scope_list:
        if s not in SCOPES:
            raise ValueError(f"scope: {s!r} is neither subscribe nor publish")
    seconds = parse_ttl(ttl)
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError("the secret must not be empty")
    iat = int(time.time()) if now is None else int(now)
    claims: dict[str, Any] = {"sub": sub, "aud": AUDIENCE, "iat": iat, "exp": iat + seconds,
                              "authorizedChannels": channel_list, "scope": scope_list}
    if info is not None:
        if not isinstance(info, dict):
            raise ValueError("info must be a JSON object (a dict)")
        if len(_compact(info).encode("utf-8")) > MAX_INFO_BYTES:
            raise ValueError(f"info is over {MAX_INFO_BYTES} bytes as compact JSON: the server refuses it")
        claims["info"] = info
    signing_input = _b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64url(_compact(claims).encode("utf-8"))
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)
