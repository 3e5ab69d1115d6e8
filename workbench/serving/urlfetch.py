"""Fetching an image by URL for the task endpoints, only when the server enables it.

The source guide's `downloadImage` fetched any URL a client named: a server-side request
forgery hole (internal hosts, cloud metadata endpoints) and an unbounded download. Here
fetching is off by default; when on, a URL must be http(s) with its host on the
allow-list, a redirect is followed only to the same host (at most 3), the body is read in
chunks up to a size cap within a timeout, and it must say it is an image.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from workbench.serving.errors import BadGateway, BadRequest, Forbidden, Timeout, TooLarge

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class UrlPolicy:
    """Off unless `allowed_hosts` names at least one host."""

    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_hosts)

    def check(self, url: str) -> str:
        """The URL's host, or a Forbidden/BadRequest naming why it is refused."""
        if not self.enabled:
            raise Forbidden(
                "fetching images by URL is off on this server: send the image bytes "
                "(multipart or base64), or start it with --allow-url-host HOST"
            )
        if not isinstance(url, str) or not url:
            raise BadRequest("image_url must be a non-empty string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Forbidden(f"image_url scheme {parts.scheme!r} is not allowed: use http(s)")
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            raise Forbidden(
                f"image_url host {host!r} is not on this server's allow-list "
                f"({', '.join(self.allowed_hosts)})"
            )
        return host


async def fetch_image(url: str, policy: UrlPolicy) -> bytes:
    """The body of an allowed image URL, within the policy's limits (the timeout bounds
    the whole fetch, so a server dripping bytes cannot hold the request open)."""
    policy.check(url)
    try:
        return await asyncio.wait_for(_fetch(url, policy), policy.timeout_s)
    except TimeoutError:
        raise Timeout(f"image_url did not answer within {policy.timeout_s:g} s") from None


async def _fetch(url: str, policy: UrlPolicy) -> bytes:
    # lazy: httpx
    import httpx

    host = policy.check(url)
    timeout = httpx.Timeout(policy.timeout_s)
    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if policy.check(target) != host:
                            raise Forbidden(
                                f"image_url redirects to another host ({urlsplit(target).hostname!r}): "
                                "redirects are followed only within the same host"
                            )
                        url = target
                        continue
                    if response.status_code != 200:
                        raise BadGateway(f"image_url answered HTTP {response.status_code}")
                    kind = response.headers.get("content-type", "").split(";")[0].strip()
                    if not kind.startswith("image/"):
                        raise BadRequest(
                            f"image_url returned content-type {kind or 'none'!r}, not an image"
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                        raise TooLarge(_too_large(policy))
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > policy.max_bytes:
                            raise TooLarge(_too_large(policy))
                    return bytes(body)
            raise BadGateway(f"image_url redirected more than {MAX_REDIRECTS} times")
    except httpx.TimeoutException:
        raise Timeout(f"image_url did not answer within {policy.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise BadGateway(f"image_url could not be fetched: {type(exc).__name__}: {exc}") from None


def _too_large(policy: UrlPolicy) -> str:
    return f"image_url body is larger than the {policy.max_bytes:,}-byte cap"
