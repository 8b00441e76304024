"""``skyfleet trust``: the signing roots of the image repository and the director (TUF/Uptane)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from tuf.api.metadata import Root

from skyfleet import store
from skyfleet.cli._client import DEFAULT_SERVER, Api, JsonOption, ServerOption, TokenOption, once
from skyfleet.cli._common import err, iso, out, parse_duration, print_json
from skyfleet.errors import ApiError, InputError, KeyStoreError, MetadataError
from skyfleet.rollout import (
    ONLINE_ROLES,
    ROLES,
    Lifetimes,
    accept_root,
    next_root,
    parse,
    sign_root,
)

__all__ = ["trust_app"]

trust_app = typer.Typer(
    help="Signed updates: the roots of trust of the image repository and the director (TUF, "
    "as Uptane uses it). Devices verify what they install with these.",
    no_args_is_help=True,
)

_Repo = Annotated[
    str, typer.Option("--repo", help="image (every release) or director (per-device).")
]


def _repo(repo: str) -> str:
    if repo not in store.REPOS:
        raise InputError(f"repository {repo!r} is unknown: use image or director")
    return repo


def _thresholds(values: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        role, sep, number = value.partition("=")
        if not sep or role not in ROLES or not number.isdigit() or not 1 <= int(number) <= 16:
            raise InputError(
                f"cannot read threshold {value!r}: write ROLE=N with ROLE one of "
                f"{', '.join(ROLES)} and N from 1 to 16, e.g. targets=2"
            )
        found[role] = int(number)
    return found


@trust_app.command("init")
def trust_init(
    database_url: Annotated[
        str, typer.Option(envvar="SKYFLEET_DATABASE_URL", help="The server's database.")
    ] = store.DEFAULT_URL,
    keys: Annotated[
        Path | None,
        typer.Option(help="Online keys, read by the server (default skyfleet-keys/ beside it)."),
    ] = None,
    root_keys: Annotated[
        Path | None,
        typer.Option(help="Root keys: keep offline (default skyfleet-root-keys/ beside it)."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(help="ROLE=N signatures needed (repeatable, default 1), e.g. root=2."),
    ] = None,
    root_expires: Annotated[str, typer.Option(help="How long the roots last.")] = "365d",
) -> None:
    """Make the signing keys and the first roots of both repositories, before the first serve.

    Each role gets as many ed25519 keys as its threshold. Online keys (targets, snapshot,
    timestamp) go where the server reads them; root keys go to --root-keys: move that folder
    offline, 'skyfleet trust rotate-root' needs it. ('skyfleet serve' does this by itself with
    the defaults when a store has no roots.) Example:

      skyfleet trust init --threshold root=2 --threshold targets=2 --root-keys /media/usb/keys
    """
    lifetimes = Lifetimes(root_s=parse_duration(root_expires, "--root-expires"))
    db = store.open_store(database_url)
    try:
        made = store.init_trust(
            db,
            time.time(),
            keys_dir=keys or db.home / "skyfleet-keys",
            root_keys_dir=root_keys or db.home / "skyfleet-root-keys",
            thresholds=_thresholds(threshold or []),
            lifetimes=lifetimes,
            actor="skyfleet trust init",
        )
    finally:
        db.close()
    if not made:
        raise InputError(
            "this store has roots already; change them with 'skyfleet trust rotate-root'"
        )
    out.print(
        f"signing keys made: online in {keys or db.home / 'skyfleet-keys'}, root keys in "
        f"{root_keys or db.home / 'skyfleet-root-keys'} (take that folder offline)",
        soft_wrap=True,
    )


@trust_app.command("status")
def trust_status(
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Roots, keys and thresholds of both repositories, and what the server holds."""
    answer = once(server, token, "GET", "/trust")
    if as_json:
        print_json(answer)
        return
    for repo, info in answer["repositories"].items():
        table = Table(
            title=f"{repo}: root v{info['root_version']}, expires {iso(info['root_expires'])} "
            f"(in {info['root_expires_in_days']} days)"
        )
        for col in ("role", "threshold", "keys", "held by the server", "version", "expires"):
            table.add_column(col)
        for role, spec in info["roles"].items():
            current = info.get(role, {})
            table.add_row(
                role,
                str(spec["threshold"]),
                " ".join(k[:12] for k in spec["keyids"]),
                str(spec["keys_held"]),
                str(current.get("version", "-")),
                iso(current["expires"]) if current else "-",
            )
        out.print(table)
        if info["roles"]["root"]["keys_held"]:
            err.print(f"warning: the server's key folder holds {repo} root keys; keep them offline")


@trust_app.command("root")
def trust_root(
    repo: _Repo = "director",
    version: Annotated[int | None, typer.Option(min=1, help="A version (default newest).")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file instead of stdout.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Print a repository's root: the trust anchor devices are built with."""
    with Api(server, token) as api:
        body = api.raw(f"/trust/{_repo(repo)}/root", version=version)
    if output is None:
        sys.stdout.write(body.decode() + "\n")
    else:
        try:
            output.write_bytes(body)
        except OSError as exc:
            raise InputError(f"cannot write {str(output)!r}: {exc.strerror}") from None
        err.print(f"{repo} root written to {output}")


def _verified_chain(api: Api, repo: str, anchor: bytes) -> bytes:
    """The server's newest root of ``repo``, verified the way a device does: each version from
    the trusted ``anchor`` on must be the next one and signed by the keys of the one before."""
    trusted = anchor
    version = parse(anchor).signed.version
    while True:
        try:
            body = api.raw(f"/trust/{repo}/root", version=version + 1)
        except ApiError as exc:
            if exc.status == 404:
                return trusted
            raise
        try:
            accept_root(trusted, body)
        except MetadataError as exc:
            raise MetadataError(
                f"the server's {repo} root v{version + 1} does not follow from your trusted "
                f"root: {exc}; refusing to sign on top of it"
            ) from None
        trusted, version = body, version + 1


def _changes(old: Root, new: Root) -> str:
    """Which roles got which keys, for the operator to read."""
    parts = []
    for role in ROLES:
        before, after = old.roles[role], new.roles[role]
        if set(before.keyids) != set(after.keyids) or before.threshold != after.threshold:
            keys = " ".join(k[:12] for k in after.keyids)
            parts.append(f"{role}: keys {keys}, threshold {after.threshold}")
    return "; ".join(parts) or "same keys"


@trust_app.command("rotate-root")
def trust_rotate_root(
    root_keys: Annotated[
        Path, typer.Option(help="The folder with the current root keys (offline).")
    ],
    repo: _Repo = "director",
    trusted_root: Annotated[
        Path | None,
        typer.Option(
            help="The root to verify the server's from (default: root.json beside the root keys, "
            "kept there by 'trust init' and by every rotation)."
        ),
    ] = None,
    new_root_keys: Annotated[
        Path | None,
        typer.Option(help="Make new root keys here and retire the current ones."),
    ] = None,
    root_threshold: Annotated[
        int | None, typer.Option(min=1, max=16, help="Root signatures needed from now on.")
    ] = None,
    rotate: Annotated[
        list[str] | None,
        typer.Option(help="Also give this online role new keys (repeatable): needs --keys."),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option(help="The server's key folder, where new online keys are put."),
    ] = None,
    expires: Annotated[str, typer.Option(help="How long the new root lasts.")] = "365d",
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign and publish the next root version, offline keys in hand (admin token).

    The server's roots are verified first, from a root you trust (--trusted-root, or the
    root.json kept beside the root keys), so that a server or network that lies cannot get new
    keys signed. Renews the root's expiry; with --new-root-keys also replaces the root keys (the
    new root is signed by the old keys and the new), and with --rotate ROLE --keys DIR the keys
    of online roles. Devices follow the chain of roots by themselves. Examples:

      skyfleet trust rotate-root --repo director --root-keys /media/usb/keys

      skyfleet trust rotate-root --root-keys old/ --new-root-keys new/ --root-threshold 2
    """
    lifetime_s = parse_duration(expires, "--expires")
    roles = rotate or []
    for role in roles:
        if role not in ONLINE_ROLES:
            raise InputError(f"--rotate {role!r}: use {', '.join(ONLINE_ROLES)}")
    if roles and keys is None:
        raise InputError("--rotate needs --keys: the server's key folder, for the new keys")
    anchor_file = trusted_root or root_keys / _repo(repo) / store.TRUSTED_ROOT
    if not anchor_file.is_file():
        raise InputError(
            f"no trusted {repo} root at {anchor_file}: pass --trusted-root FILE, a root you "
            "verified (e.g. the one your devices were built with)"
        )
    with Api(server, token) as api:
        latest = _verified_chain(api, repo, anchor_file.read_bytes())
        current = parse(latest).signed
        if not isinstance(current, Root):
            raise MetadataError(f"{anchor_file} is not root metadata")
        held = store.load_keys(root_keys, repo)
        spec = current.roles["root"]
        old_signers = [held[k] for k in spec.keyids if k in held][: spec.threshold]
        if len(old_signers) < spec.threshold:
            raise KeyStoreError(
                f"{root_keys} holds {len(old_signers)} of the {repo} root keys; "
                f"{spec.threshold} must sign"
            )
        new_keys, thresholds, new_signers = {}, {}, []
        if new_root_keys is not None:
            count = root_threshold or spec.threshold
            new_signers = store.generate_keys(new_root_keys, repo, "root", count)
            new_keys["root"] = [s.public_key for s in new_signers]
        if root_threshold is not None:
            thresholds["root"] = root_threshold
        for role in roles:
            assert keys is not None
            count = current.roles[role].threshold
            new_keys[role] = [s.public_key for s in store.generate_keys(keys, repo, role, count)]
        md = next_root(
            current, now_s=time.time(), lifetime_s=lifetime_s, keys=new_keys, thresholds=thresholds
        )
        body = sign_root(md, [*old_signers, *new_signers])
        answer = api.request(
            "POST",
            f"/trust/{repo}/root",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    for folder in {root_keys, new_root_keys or root_keys}:
        store.write_private(folder / repo / store.TRUSTED_ROOT, body)
    answer["changes"] = _changes(current, md.signed)
    if as_json:
        print_json(answer)
    else:
        out.print(
            f"{repo} root v{answer['version']} published, expires {iso(answer['expires'])} "
            f"({answer['changes']})",
            soft_wrap=True,
        )
