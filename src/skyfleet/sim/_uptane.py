"""A device that verifies its updates the Uptane way, with python-tuf's own client.

It runs ``tuf.ngclient.Updater`` against the director (what to install) and the image repository
(what is genuine), both under its DDI path and with its target token, checks the director's
assignment against the image repository (:func:`skyfleet.rollout.verify_assignment`), and
downloads only verified bytes. Every check is the real client's: a tampered file, an old or
expired or mixed-up piece of metadata, a signature short of the threshold, or an endless
response ends in a ``tuf.api.exceptions`` error (or :class:`~skyfleet.errors.UntrustedUpdateError`)
and nothing is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tuf.api import exceptions
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from skyfleet.rollout import verify_assignment

__all__ = ["TokenFetcher", "UptaneDevice"]


class TokenFetcher(FetcherInterface):
    """ngclient's HTTP transport with the device's ``Authorization: TargetToken`` header."""

    def __init__(self, token: str, *, timeout_s: float = 30.0, chunk_bytes: int = 65536) -> None:
        self.client = httpx.Client(
            headers={"Authorization": f"TargetToken {token}"}, timeout=timeout_s
        )
        self.chunk_bytes = chunk_bytes

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self.client.send(self.client.build_request("GET", url), stream=True)
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(str(exc)) from exc
        if response.status_code >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"HTTP {response.status_code} from {url}", response.status_code
            )
        return self._chunks(response)

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(self.chunk_bytes)
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(str(exc)) from exc
        finally:
            response.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


@dataclass
class UptaneDevice:
    """One device's verified view of its updates.

    ``device_base`` is its DDI URL (``http://HOST/TENANT/controller/v1/DEVICE``); ``hardware``
    its hardware generation (what it accepts images built for);
    ``director_root`` and ``image_root`` are the roots it was built with (its trust anchors);
    ``workdir`` keeps the metadata it trusts between checks (rollback protection) and the
    downloaded files. ``fetcher`` defaults to a :class:`TokenFetcher` with ``token``.
    """

    device_id: str
    device_base: str
    token: str
    hardware: str
    director_root: bytes
    image_root: bytes
    workdir: Path
    fetcher: FetcherInterface | None = None
    config: UpdaterConfig | None = None

    def __post_init__(self) -> None:
        self._owned: TokenFetcher | None = None
        if self.fetcher is None:
            self.fetcher = self._owned = TokenFetcher(self.token)

    def close(self) -> None:
        """Close the HTTP connections of the fetcher it made (not of one it was given)."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> UptaneDevice:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _updater(self, repo: str, anchor: bytes) -> Updater:
        folder = self.workdir / repo
        folder.mkdir(parents=True, exist_ok=True)
        trusted = folder / "root.json"
        return Updater(
            metadata_dir=str(folder),
            metadata_base_url=f"{self.device_base}/tuf/{repo}/",
            target_dir=str(self.workdir / "targets"),
            target_base_url=f"{self.device_base}/tuf/targets/",
            fetcher=self.fetcher,
            config=self.config,
            # the root it was built with the first time, then the newest root it verified
            bootstrap=None if trusted.exists() else anchor,
        )

    def check(self) -> tuple[list[TargetFile], Updater]:
        """Refresh both repositories and return the director's assignment, every target checked
        against the image repository, with the image repository's updater to download with.

        Raises ``tuf.api.exceptions.RepositoryError`` / ``DownloadError`` for metadata that fails
        TUF's checks, :class:`~skyfleet.errors.UntrustedUpdateError` for an assignment the image
        repository does not vouch for.
        """
        director = self._updater("director", self.director_root)
        director.refresh()
        # ngclient keeps only verified metadata in its folder: the director's targets are there.
        verified = Metadata[Targets].from_file(str(self.workdir / "director" / "targets.json"))
        image = self._updater("image", self.image_root)
        image.refresh()
        assigned = verify_assignment(
            self.device_id, self.hardware, verified.signed.targets, image.get_targetinfo
        )
        return assigned, image

    def update(self) -> list[Path]:
        """Check, then download every assigned target (verified against the image repository's
        length and hashes); returns the files, or raises as :meth:`check` and on bad bytes."""
        assigned, image = self.check()
        files = []
        for target in assigned:
            genuine = image.get_targetinfo(target.path)
            assert genuine is not None  # verify_assignment found it
            cached = image.find_cached_target(genuine)
            files.append(Path(cached or image.download_target(genuine)))
        return files
