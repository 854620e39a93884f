"""The secret policy for OpenAI-compatible servers: whose key goes to which URL, and which URLs callers may name."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, InputError
from .config import ServingConfig
from .inputs import as_text, shown
from .space import on_space


def caller_url_mode(cfg: ServingConfig, env: Mapping[str, str] | None = None) -> str:
    """Whether callers may name a server: "off", "public" or "any" ("auto" is off on a Space, any elsewhere).

    Args:
        cfg: the app's config (its `caller_base_url`).
        env: the environment that says whether this is a Space (default: ``os.environ``).

    Returns:
        "off", "public" or "any".
    """
    if cfg.caller_base_url != "auto":
        return cfg.caller_base_url
    return "off" if on_space(env) else "any"


def _url_prefixes(listed: str) -> list[str]:
    return [u.strip().rstrip("/") for u in listed.split(",") if u.strip()]


def _refused_address(host: str, port: int) -> str | None:
    """The first private, loopback, link-local or otherwise non-public address `host` resolves to, if any."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InputError(f"base_url host {shown(host)} does not resolve; check the URL") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if not ip.is_global or ip.is_multicast:
            return str(ip)
    return None


def check_caller_url(url: str, cfg: ServingConfig, env: Mapping[str, str] | None = None) -> str:
    """A caller-given server URL the operator's policy allows (scheme, no credentials, address), else InputError.

    Every address the host resolves to is checked. The connection resolves the name again, so a DNS
    server that answers differently the second time could still reach a private address: operators who
    need certainty list their servers in `allowed_base_urls` and set `caller_base_url` to "off".

    Args:
        url: the caller's base_url.
        cfg: the app's config (its `allowed_base_urls` and `caller_base_url`).
        env: the environment that says whether this is a Space (default: ``os.environ``).

    Returns:
        The URL, unchanged.

    Raises:
        InputError: the URL is malformed, holds credentials, or the policy refuses it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"base_url must be an http:// or https:// URL, got {shown(url)}")
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "base_url must not hold a user name or password (user:pass@host); type your key in api_key instead"
        )
    if any(url.rstrip("/") == p or url.startswith(p + "/") for p in _url_prefixes(cfg.allowed_base_urls)):
        return url
    mode = caller_url_mode(cfg, env)
    if mode == "off":
        raise InputError(
            "this app does not send requests to a base_url chosen by the caller; leave base_url empty to use the "
            "app's own server (its operator can allow others with ECCO_APP_CALLER_BASE_URL or "
            "ECCO_APP_ALLOWED_BASE_URLS)"
        )
    if mode == "public":
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InputError(f"base_url has an invalid port: {shown(url)}") from None
        bad = _refused_address(parts.hostname, port)
        if bad is not None:
            raise InputError(
                f"base_url host {shown(parts.hostname)} resolves to {bad}, a private, loopback or link-local "
                "address, which this app does not call"
            )
    return url


def openai_target(
    cfg: ServingConfig, base_url: Any, api_key: Any, env: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(server URL, key) for one OpenAI-compatible request under the operator's secret policy.

    No base_url: the operator's server (`cfg.openai_base_url`, else $OPENAI_BASE_URL, else api.openai.com)
    with the caller's key, else the operator's $OPENAI_API_KEY. A caller-given base_url (if the policy allows
    it) only ever gets the caller's own key ("" means none): the operator's key never leaves for it.
    A None key means "the operator's", which the OpenAI backend reads from the environment.

    Args:
        cfg: the app's config.
        base_url: the caller's server URL ("" or None: the operator's).
        api_key: the caller's key ("" or None: none given).
        env: the environment with OPENAI_BASE_URL and OPENAI_API_KEY (default: ``os.environ``).

    Returns:
        (server URL, key); a None URL is api.openai.com, a None key the operator's.

    Raises:
        InputError: a field is not text, or the URL is refused.
        ConfigurationError: no key is given and the operator has none.
    """
    env = os.environ if env is None else env
    url = as_text(base_url, "base_url", 300).strip()
    if api_key is not None and not isinstance(api_key, str):
        raise InputError("api_key must be text")  # never echoed, even back to its sender
    key = as_text(api_key, "api_key", 400).strip()
    if url:
        return check_caller_url(url, cfg, env), key
    own = cfg.openai_base_url.strip() or env.get("OPENAI_BASE_URL", "").strip() or None
    if key:
        return own, key
    if own is None and not env.get("OPENAI_API_KEY"):
        raise ConfigurationError(
            "the openai backend needs an API key: type your own in api_key (used for this request only), or "
            "choose the local backend"
        )
    return own, None
