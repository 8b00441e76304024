"""Keys and root metadata of a TUF repository (python-tuf's Metadata API).

skyfleet runs two repositories, as Uptane describes: the *image* repository signs every
artifact of every release; the *director* signs, per device, what that device should install.
Each has its own root of trust: a root role (offline keys, about a year) that names the keys
and thresholds of the online roles targets, snapshot and timestamp (about a day).

Everything here takes bytes and records and returns bytes and records; reading key files and
storing metadata is the store's work.

>>> signer, pem = generate_key()
>>> load_signer(pem).public_key.keyid == signer.public_key.keyid
True
>>> keys = {role: [signer.public_key] for role in ROLES}
>>> root = new_root(keys, {}, now_s=0.0, lifetime_s=365 * 86400)
>>> body = sign_root(root, [signer])
>>> accept_root(None, body).signed.version
1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Role, Root
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from skyfleet.errors import KeyStoreError, MetadataError

__all__ = [
    "ONLINE_ROLES",
    "ROLES",
    "accept_root",
    "expiry_datetime",
    "generate_key",
    "load_signer",
    "new_root",
    "next_root",
    "parse",
    "role_signers",
    "serialize",
    "sign_root",
]

#: The top-level roles, root first.
ROLES = ("root", "targets", "snapshot", "timestamp")
#: The roles the server signs with while it runs; root is signed offline.
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
_COMPACT = JSONSerializer(compact=True)


def generate_key() -> tuple[Signer, bytes]:
    """A new ed25519 key: its signer and its private key as PEM (PKCS#8) bytes to keep."""
    private = Ed25519PrivateKey.generate()
    signer = CryptoSigner(private)
    return signer, signer.private_bytes


def load_signer(pem: bytes) -> Signer:
    """The signer of an ed25519 private key in PEM (PKCS#8); :class:`KeyStoreError` otherwise."""
    try:
        private = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyStoreError("skyfleet signs with ed25519 keys; this key is another kind")
    return CryptoSigner(private)


def expiry_datetime(t_unix_s: float) -> datetime:
    """A UNIX time as the UTC datetime TUF writes (whole seconds)."""
    return datetime.fromtimestamp(int(t_unix_s), UTC)


def serialize(md: Metadata[Any]) -> bytes:
    """Metadata as the compact JSON that is served (signatures are over canonical JSON)."""
    return md.to_bytes(_COMPACT)


def parse(body: bytes) -> Metadata[Any]:
    """Metadata from served bytes; :class:`MetadataError` when they do not parse."""
    try:
        return Metadata.from_bytes(body)
    except (DeserializationError, ValueError, KeyError, TypeError) as exc:
        raise MetadataError(f"not TUF metadata ({exc})") from None


def _roles(keys: Mapping[str, Sequence[Key]], thresholds: Mapping[str, int]) -> Root:
    root = Root()
    for role in ROLES:
        role_keys = keys.get(role, ())
        threshold = thresholds.get(role, 1)
        if threshold < 1:
            raise MetadataError(f"the {role} threshold must be at least 1, not {threshold}")
        if len({k.keyid for k in role_keys}) < threshold:
            raise MetadataError(
                f"the {role} role has {len(role_keys)} keys, fewer than its threshold {threshold}"
            )
        root.roles[role] = Role([], threshold)
        for key in role_keys:
            root.add_key(key, role)
    return root


def new_root(
    keys: Mapping[str, Sequence[Key]],
    thresholds: Mapping[str, int],
    *,
    now_s: float,
    lifetime_s: float,
) -> Metadata[Root]:
    """Version 1 of a root (unsigned): ``keys`` and ``thresholds`` (default 1) per role,
    consistent snapshots on, expiring ``lifetime_s`` after ``now_s``."""
    root = _roles(keys, thresholds)
    root.version = 1
    root.expires = expiry_datetime(now_s + lifetime_s)
    root.consistent_snapshot = True
    return Metadata(root)


def next_root(
    current: Root,
    *,
    now_s: float,
    lifetime_s: float,
    keys: Mapping[str, Sequence[Key]] | None = None,
    thresholds: Mapping[str, int] | None = None,
) -> Metadata[Root]:
    """The root after ``current`` (unsigned): one version up, expiring ``lifetime_s`` from
    ``now_s``, with the roles in ``keys`` / ``thresholds`` replaced and the others kept.

    It must be signed by a threshold of the current root keys *and* of its own.
    """
    keep = {
        role: [current.get_key(keyid) for keyid in current.roles[role].keyids] for role in ROLES
    }
    kept_thresholds = {role: current.roles[role].threshold for role in ROLES}
    root = _roles({**keep, **(keys or {})}, {**kept_thresholds, **(thresholds or {})})
    root.version = current.version + 1
    root.expires = expiry_datetime(now_s + lifetime_s)
    root.consistent_snapshot = current.consistent_snapshot
    return Metadata(root)


def sign_root(root: Metadata[Root], signers: Sequence[Signer]) -> bytes:
    """Add the signatures of ``signers`` to ``root``; returns the signed bytes."""
    for signer in signers:
        root.sign(signer, append=True)
    return serialize(root)


def accept_root(current: bytes | None, new: bytes) -> Metadata[Root]:
    """``new`` if it may follow the root ``current`` (None: it is the first), as a TUF client
    would check it: the next version, signed by a threshold of the previous root's keys and of
    its own. :class:`MetadataError` says what is missing."""
    md = parse(new)
    if not isinstance(md.signed, Root):
        raise MetadataError(f"expected root metadata, got {md.signed.type}")
    previous = None
    if current is not None:
        old = parse(current).signed
        assert isinstance(old, Root)
        previous = old
        if md.signed.version != old.version + 1:
            raise MetadataError(
                f"the new root must be version {old.version + 1}, not {md.signed.version}"
            )
    elif md.signed.version != 1:
        raise MetadataError(f"the first root must be version 1, not {md.signed.version}")
    result = md.signed.get_root_verification_result(previous, md.signed_bytes, md.signatures)
    if not result.first.verified:
        raise MetadataError(
            f"root v{md.signed.version} is signed by {len(result.first.signed)} of the previous "
            f"root's keys; it needs {result.first.threshold}"
        )
    if not result.second.verified:
        raise MetadataError(
            f"root v{md.signed.version} is signed by {len(result.second.signed)} of its own root "
            f"keys; it needs {result.second.threshold}"
        )
    try:
        for role in ONLINE_ROLES:
            md.signed.get_delegated_role(role)
    except (ValueError, UnsignedMetadataError) as exc:  # pragma: no cover - Root enforces roles
        raise MetadataError(str(exc)) from None
    return md


def role_signers(root: Root, available: Mapping[str, Signer]) -> dict[str, list[Signer]]:
    """For each online role of ``root``, the ``available`` signers (by keyid) it names, as many
    as its threshold; :class:`KeyStoreError` names a role with too few keys at hand."""
    chosen: dict[str, list[Signer]] = {}
    for role in ONLINE_ROLES:
        spec = root.roles[role]
        have = [available[keyid] for keyid in spec.keyids if keyid in available]
        if len(have) < spec.threshold:
            raise KeyStoreError(
                f"the {role} role needs {spec.threshold} of its keys "
                f"({', '.join(k[:12] for k in spec.keyids)}), and {len(have)} are at hand"
            )
        chosen[role] = have[: spec.threshold]
    return chosen
