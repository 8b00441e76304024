"""What an edge relay reads in device requests and upstream answers: pure functions, no I/O.

- :func:`device_path`: the path the relay sends upstream, built from the checked tenant, device
  id and route parts (never the raw path): a path with ``.``/``..`` or empty segments, or a
  percent-encoded ``/``, ``\\`` or ``.``, is refused, so that no request reaches anything but the
  device's own paths on the server.
- :func:`classify`: which DDI or TUF resource a path under ``/{tenant}/controller/v1/{device}``
  names, and how the relay treats it (a document to cache, bytes to keep by hash, a report to
  queue).
- :func:`rewrite_hrefs`: links in the upstream's DDI answers that name the device's own path
  point at the relay instead, whatever host the upstream put in them.
- :func:`deployment_refs`, :func:`tuf_target_refs`: the bytes a deployment or a director's
  targets metadata names, by SHA-256, so that one cached copy serves every device of the site.
- :func:`reported_link` and :func:`hide_reported`: a device that reported an action finished
  (or a cancel confirmed, or its configData) through the relay is not offered it again by an
  answer older than that report's arrival upstream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from skyfleet.errors import InputError
from skyfleet.rollout import TERMINAL, feedback_target
from skyfleet.store import BlobRef

__all__ = [
    "BLOB_KINDS",
    "DOCUMENT_KINDS",
    "REPORT_KINDS",
    "DevicePath",
    "classify",
    "deployment_refs",
    "device_path",
    "hide_reported",
    "local_path",
    "reported_link",
    "rewrite_hrefs",
    "tuf_target_refs",
]

#: GETs whose answers the relay keeps as they came, by device and path.
DOCUMENT_KINDS = frozenset(
    {"poll", "deployment", "installed", "cancel", "md5sum", "tuf_meta", "other"}
)
#: GETs whose bytes the relay keeps once, by SHA-256, and serves with HTTP Range.
BLOB_KINDS = frozenset({"artifact", "tuf_target"})
#: Reports the relay queues and forwards in order, with an idempotency key: kind -> method.
REPORT_KINDS = {
    "feedback": "POST",
    "cancel_feedback": "POST",
    "telemetry": "POST",
    "config_data": "PUT",
}

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASHED_NAME = re.compile(r"([0-9a-f]{64})\.(.+)")
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r""), "poll"),
    (re.compile(r"deploymentBase/(\d{1,19})"), "deployment"),
    (re.compile(r"deploymentBase/(\d{1,19})/feedback"), "feedback"),
    (re.compile(r"installedBase/(\d{1,19})"), "installed"),
    (re.compile(r"cancelAction/(\d{1,19})"), "cancel"),
    (re.compile(r"cancelAction/(\d{1,19})/feedback"), "cancel_feedback"),
    (re.compile(r"configData"), "config_data"),
    (re.compile(r"telemetry"), "telemetry"),
    (re.compile(r"softwaremodules/\d{1,10}/artifacts/([^/]+)"), "artifact"),
    (re.compile(r"tuf/(?:image|director)/[^/]+"), "tuf_meta"),
    (re.compile(r"tuf/targets/((?:[^/]+/)*[^/]+)"), "tuf_target"),
]


#: Percent-encodings of ``/``, ``\\`` and ``.``: a server or client may decode them into path
#: separators or dot segments after the relay checked the path.
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|2e)", re.IGNORECASE)
#: What :func:`device_path` leaves unencoded in a segment (RFC 3986 ``pchar``).
_PCHAR = "!$&'()*+,;=:@-._~"


def device_path(raw_path: str, tenant: str, device_id: str, rest: str) -> str:
    """The upstream path for a device request: ``/{tenant}/controller/v1/{device_id}/{rest}``,
    each segment encoded again from the decoded parts the relay checked (``raw_path`` is the
    path as the device sent it, still percent-encoded). :class:`InputError` for dot or empty
    segments, backslashes or percent-encoded separators, in either form.

    >>> device_path("/T/controller/v1/a/tuf/targets/x%20y", "T", "a", "tuf/targets/x y")
    '/T/controller/v1/a/tuf/targets/x%20y'
    >>> device_path("/T/controller/v1/b/../a", "T", "b", "../a")
    Traceback (most recent call last):
    ...
    skyfleet.errors.InputError: the path '/T/controller/v1/b/../a' has '.', '..' or empty segments, a backslash or an encoded separator: send the device's own path as it is
    """
    segments = [tenant, "controller", "v1", device_id, *(rest.split("/") if rest else [])]
    if (
        _ENCODED_SEPARATOR.search(raw_path)
        or "\\" in raw_path
        or any(s in ("", ".", "..") or "\\" in s or "/" in s for s in segments)
        or raw_path.split("?")[0].count("/") != len(segments)
    ):
        shown = raw_path if len(raw_path) <= 200 else raw_path[:197] + "..."
        raise InputError(
            f"the path {shown!r} has '.', '..' or empty segments, a backslash or an encoded "
            "separator: send the device's own path as it is"
        )
    return "".join("/" + quote(s, safe=_PCHAR) for s in segments)


@dataclass(frozen=True, slots=True)
class DevicePath:
    """What a device path names: ``kind`` (see the ``*_KINDS`` sets), the action id in it,
    and for a TUF target with a hash-prefixed name, the SHA-256 that name promises."""

    kind: str
    action_id: int | None = None
    sha256: str | None = None


def classify(rest: str) -> DevicePath:
    """The resource ``rest`` (the path after ``/{tenant}/controller/v1/{device}``) names.

    >>> classify("")
    DevicePath(kind='poll', action_id=None, sha256=None)
    >>> classify("/deploymentBase/7/feedback")
    DevicePath(kind='feedback', action_id=7, sha256=None)
    >>> classify("/softwaremodules/3/artifacts/os.swu.MD5SUM").kind
    'md5sum'
    >>> classify("/tuf/targets/2025.1/hw3/" + "ab" * 32 + ".os.swu").sha256 == "ab" * 32
    True
    >>> classify("/tuf/director/3.targets.json").kind, classify("/somewhere/else").kind
    ('tuf_meta', 'other')
    """
    path = rest.removeprefix("/")
    for pattern, kind in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if kind == "artifact" and match.group(1).endswith(".MD5SUM"):
            return DevicePath("md5sum")
        if kind == "tuf_target":
            hashed = _HASHED_NAME.fullmatch(match.group(1).rpartition("/")[2])
            return DevicePath(kind, sha256=hashed.group(1) if hashed else None)
        digits = match.group(1) if match.groups() and match.group(1).isdigit() else None
        return DevicePath(kind, action_id=int(digits) if digits else None)
    return DevicePath("other")


def local_path(href: str, device_prefix: str) -> str | None:
    """The part of ``href`` from the device's own DDI path on (``/{tenant}/controller/v1/{id}``
    and what follows, without the query), or None if it does not name the device's path.

    >>> local_path("http://fleet:8000/x/DEFAULT/controller/v1/car-1/deploymentBase/4?c=1",
    ...            "/DEFAULT/controller/v1/car-1")
    '/DEFAULT/controller/v1/car-1/deploymentBase/4'
    >>> local_path("https://cdn.example/car-1.swu", "/DEFAULT/controller/v1/car-1") is None
    True
    """
    path = urlsplit(href).path
    start = path.find(device_prefix)
    if start < 0:
        return None
    end = start + len(device_prefix)
    if end < len(path) and path[end] != "/":
        return None  # another device whose id starts with this one's
    return path[start:]


def rewrite_hrefs(body: Any, device_prefix: str, relay_root: str) -> Any:
    """``body`` (parsed JSON) with every ``href`` that names the device's own path pointing at
    ``relay_root`` (the relay's URL as the device addressed it) instead; others stay.

    >>> rewrite_hrefs({"_links": {"configData": {"href": "http://10.0.0.1/T/controller/v1/a/configData"}}},
    ...               "/T/controller/v1/a", "http://relay:8000")
    {'_links': {'configData': {'href': 'http://relay:8000/T/controller/v1/a/configData'}}}
    """
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key == "href" and isinstance(value, str):
                found = local_path(value, device_prefix)
                if found is not None:
                    query = urlsplit(value).query
                    value = f"{relay_root}{found}" + (f"?{query}" if query else "")
            else:
                value = rewrite_hrefs(value, device_prefix, relay_root)
            out[key] = value
        return out
    if isinstance(body, list):
        return [rewrite_hrefs(item, device_prefix, relay_root) for item in body]
    return body


def _artifacts(body: Any) -> Iterator[Mapping[str, Any]]:
    deployment = body.get("deployment") if isinstance(body, dict) else None
    chunks = deployment.get("chunks") if isinstance(deployment, dict) else None
    for chunk in chunks if isinstance(chunks, list) else []:
        artifacts = chunk.get("artifacts") if isinstance(chunk, dict) else None
        for artifact in artifacts if isinstance(artifacts, list) else []:
            if isinstance(artifact, dict):
                yield artifact


def deployment_refs(body: Any, device_prefix: str) -> list[tuple[str, BlobRef]]:
    """The download paths of a DDI ``deploymentBase`` answer, each with the SHA-256, size and
    file name it promises (artifacts without a well-formed SHA-256 are left out)."""
    refs = []
    for artifact in _artifacts(body):
        hashes = artifact.get("hashes")
        sha256 = str(hashes.get("sha256", "")).lower() if isinstance(hashes, dict) else ""
        links = artifact.get("_links")
        download = (
            links.get("download-http") or links.get("download") if isinstance(links, dict) else None
        )
        href = download.get("href") if isinstance(download, dict) else None
        path = local_path(href, device_prefix) if isinstance(href, str) else None
        if path is None or not _SHA256.fullmatch(sha256):
            continue
        size = artifact.get("size")
        filename = artifact.get("filename")
        refs.append(
            (
                path,
                BlobRef(
                    sha256,
                    size if isinstance(size, int) else None,
                    filename if isinstance(filename, str) else None,
                ),
            )
        )
    return refs


def tuf_target_refs(metadata: Any, device_prefix: str) -> list[tuple[str, BlobRef]]:
    """The target paths a TUF targets metadata lists (plain and hash-prefixed), each with its
    SHA-256 and length. The relay does not check the signatures: the device does, and bytes
    that do not match the signed hash are refused by it (and by the relay's cache)."""
    signed = metadata.get("signed") if isinstance(metadata, dict) else None
    targets = signed.get("targets") if isinstance(signed, dict) else None
    refs = []
    for name, info in (targets if isinstance(targets, dict) else {}).items():
        hashes = info.get("hashes") if isinstance(info, dict) else None
        sha256 = str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""
        if not _SHA256.fullmatch(sha256) or not isinstance(name, str) or ".." in name:
            continue
        length = info.get("length")
        ref = BlobRef(sha256, length if isinstance(length, int) else None)
        folder, _, base = name.rpartition("/")
        hashed = f"{folder}/{sha256}.{base}" if folder else f"{sha256}.{base}"
        refs.append((f"{device_prefix}/tuf/targets/{name}", ref))
        refs.append((f"{device_prefix}/tuf/targets/{hashed}", ref))
    return refs


def reported_link(where: DevicePath, body: Any) -> str | None:
    """The poll link a device's report answers for good, or None.

    >>> fb = {"status": {"execution": "closed", "result": {"finished": "success"}}}
    >>> reported_link(DevicePath("feedback", 12), fb)
    'deploymentBase/12'
    >>> reported_link(DevicePath("feedback", 12), {"status": {"execution": "proceeding"}}) is None
    True
    >>> reported_link(DevicePath("config_data"), {"data": {"hw": "hw3"}})
    'configData'
    """
    if where.kind == "config_data":
        return "configData"
    status = body.get("status") if isinstance(body, dict) else None
    if where.action_id is None or not isinstance(status, dict):
        return None
    execution = str(status.get("execution", ""))
    result = status.get("result")
    finished = str(result.get("finished", "none")) if isinstance(result, dict) else "none"
    details = status.get("details")
    texts = [str(d) for d in details] if isinstance(details, list) else []
    if where.kind == "cancel_feedback":
        confirmed = execution == "canceled" or (execution == "closed" and finished == "success")
        return f"cancelAction/{where.action_id}" if confirmed else None
    if where.kind == "feedback" and feedback_target(execution, finished, texts) in TERMINAL:
        return f"deploymentBase/{where.action_id}"
    return None


_LINK_ACTION = re.compile(r"/(deploymentBase|cancelAction)/(\d+)$")


def hide_reported(
    poll: Any, reported: Mapping[str, float | None], fetched_at: float
) -> tuple[Any, list[str]]:
    """The base poll answer ``poll`` without the links the device already answered through the
    relay, if the answer was fetched (``fetched_at``, UNIX seconds) before the upstream took the
    report (``reported``: link -> when it was taken, None while still queued). Returns the
    answer and the links removed.

    >>> poll = {"_links": {"deploymentBase": {"href": "http://r/T/controller/v1/a/deploymentBase/5?c=1"}}}
    >>> hide_reported(poll, {"deploymentBase/5": None}, 100.0)
    ({'_links': {}}, ['deploymentBase/5'])
    >>> hide_reported(poll, {"deploymentBase/5": 90.0}, 100.0)[1]  # fetched after it arrived
    []
    """
    links = poll.get("_links") if isinstance(poll, dict) else None
    if not isinstance(links, dict) or not reported:
        return poll, []
    kept, hidden = {}, []
    for name, link in links.items():
        href = link.get("href", "") if isinstance(link, dict) else ""
        match = _LINK_ACTION.search(urlsplit(href).path) if isinstance(href, str) else None
        key = f"{match.group(1)}/{match.group(2)}" if match else str(name)
        acked = reported.get(key, fetched_at)
        if key in reported and (acked is None or fetched_at < acked):
            hidden.append(key)
        else:
            kept[name] = link
    return {**poll, "_links": kept}, hidden
