"""The web app's limits on what a client sends (`sirestore serve`): upload size, content type, names, bind address.

Kept apart from `serve.py` so each rule is small and tested on its own (tests/test_serve.py):

- `read_body`: the request body, refused (413) as soon as it passes the upload limit;
- `check_content_type`: only `image/*` or `application/octet-stream` (what the page sends), or no
  Content-Type at all (RFC 9110: the recipient may treat it as octet-stream), else 415. The header
  only filters: whether the bytes are an image is decided by decoding them, never by the header;
- `download_name` / `content_disposition`: a client's file name is never used as a path; it only
  names the download, reduced to its base name in safe characters and bounded length;
- `NoSniff`: every response carries `X-Content-Type-Options: nosniff`;
- `bind`: listen on host:port and say, in one warning line, when that is not a loopback address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
import urllib.parse

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCEPTED_TYPES = "image/* or application/octet-stream"
NAME_CHARS = 80  # characters of the client's file name kept in the download name
ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
UNICODE_UNSAFE = re.compile(r"[^\w.-]+")  # \w: letters and digits of any script


class ApiError(Exception):
    """A problem reported to the page as JSON `{"error": message}` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_content_type(header: str | None, name: str) -> None:
    """Refuse (415) an upload whose Content-Type is neither image/* nor application/octet-stream."""
    if header is None or not header.strip():
        return
    media = header.split(";", 1)[0].strip().lower()
    if media == "application/octet-stream" or (media.startswith("image/") and len(media) > len("image/")):
        return
    shown = " ".join(media.split())[:60] or "(blank)"
    raise ApiError(415, f"{name}: content type {shown!r} refused; send the file's bytes as {ACCEPTED_TYPES}")


async def read_body(request: Request, limit: int, name: str) -> bytes:
    """The request body, refused (413) as soon as it is longer than `limit` bytes."""
    too_big = ApiError(413, f"{name}: larger than the upload limit of {limit / 1e6:g} MB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def client_name(raw: str) -> str:
    """The client's file name as shown in messages: one line, control characters as `?`, at most 200."""
    name = "".join("?" if unicodedata.category(c) == "Cc" and not c.isspace() else c for c in raw)
    return " ".join(name.split())[:200] or "upload"


def _stem(name: str, keep: re.Pattern[str]) -> str:
    base = re.split(r"[/\\]", name)[-1]  # the base name, whichever separator the client used
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = keep.sub("_", unicodedata.normalize("NFC", stem))
    return stem[:NAME_CHARS].strip("._-") or "image"


def download_name(name: str) -> str:
    """`<stem>_restored.png` from a client's file name: ASCII letters, digits, `.`, `_`, `-` only."""
    return f"{_stem(name, ASCII_UNSAFE)}_restored.png"


def content_disposition(name: str) -> str:
    """`attachment; filename="<ASCII>"`, plus an RFC 5987 `filename*` (percent-encoded) when the name
    has other letters; neither part can hold a quote, `;`, a control character or a path separator."""
    ascii_name = download_name(name)
    unicode_name = f"{_stem(name, UNICODE_UNSAFE)}_restored.png"
    value = f'attachment; filename="{ascii_name}"'
    if unicode_name != ascii_name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(unicode_name, safe='')}"
    return value


class NoSniff:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message["headers"] = [*headers, (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_nosniff if scope["type"] == "http" else send)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> tuple[socket.socket, str | None]:
    """A listening socket on host:port (OSError with one line when it cannot), and a one-line warning
    when the address it is bound to is not a loopback one (reachable from other machines)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as err:
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    address = sock.getsockname()[0]
    if is_loopback(address):
        return sock, None
    return sock, (
        f"warning: listening on {address}, not only this machine: anyone who can reach it can upload "
        "images and use this computer's processor (no password, no TLS); the default --host 127.0.0.1 is local only"
    )
