"""Drive the real SWUpdate *suricatta* hawkBit client (Debian ``swupdate`` 2022.12) in tests.

What this build needs, found by running it against a recording fake server:

* it is built with ``CONFIG_SIGNED_IMAGES`` (CMS): every ``.swu`` must carry
  ``sw-description.sig`` and ``swupdate`` must be given a certificate that verifies it.
  :func:`build_swu` signs with the fixed, test-only RSA key below (pure Python, no openssl);
  :func:`start_suricatta` hands swupdate the matching self-signed certificate;
* it is built with hardware-compatibility checks: ``sw-description`` must list
  ``hardware-compatibility`` and swupdate must run with ``-H board:revision``;
* its IPC sockets and scratch files live in ``$TMPDIR`` (``sockinstctrl``, ``swupdateprog``),
  so each instance gets its own ``TMPDIR`` and several can run side by side;
* the bootloader is ``none`` (state kept in RAM): after an install suricatta reports
  ``proceeding`` / "All Chunks Installed." and waits for a restart; a restart with
  ``confirm=True`` (``-c 2``) reports ``closed`` / ``success`` ("Update Installed.").

What the server must do for it (all hrefs absolute; every answer to a POST/PUT exactly 200):

* ``GET /{tenant}/controller/v1/{id}`` needs ``config.polling.sleep`` ("HH:MM:SS"; it replaces
  ``poll_s``); ``_links.cancelAction`` wins over ``_links.deploymentBase``; drop
  ``_links.configData`` once the ``PUT .../configData`` arrived, or suricatta re-sends it every
  poll and never installs;
* ``deploymentBase`` needs ``id``, ``deployment.update`` ("forced"/"attempt"; "skip" *or a
  missing field* makes suricatta close the action as success, "Skipped Update."),
  ``deployment.chunks[].part/name/version/artifacts``, and per artifact ``filename``
  ending ``.swu``, ``hashes.sha1`` (checked), ``size`` and ``_links.download`` or
  ``_links.download-http``; downloads resume with ``Range: bytes=N-`` (answer 206);
* feedback bodies can hold raw control characters: parse with ``json.loads(strict=False)``.

Typical test::

    swu = build_swu(tmp / "u.swu", version="2.0", payload=b"x", install_path=tmp / "fw.bin")
    proc = start_suricatta(url=base_url, tenant="DEFAULT", device_id="car-1",
                           target_token=token, workdir=tmp / "dev")
    ...  # server sees proceeding feedbacks, last one "All Chunks Installed."
    stop_suricatta(proc)
    proc = start_suricatta(..., workdir=tmp / "dev", confirm=True)  # "after the reboot"
    ...  # server sees closed / success
    stop_suricatta(proc)

Nothing here touches the network beyond the URL it is given (use ``http://127.0.0.1:PORT``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

SWUPDATE: str | None = shutil.which("swupdate")
SWUPDATE_IPC: str | None = shutil.which("swupdate-ipc")
SWUPDATE_SKIP_REASON = "swupdate (SWUpdate suricatta hawkBit client) is not installed"

HW_BOARD = "skyfleet-test"
HW_REVISION = "1.0"

#: What suricatta writes to ``details`` once every chunk is installed (execution ``proceeding``,
#: finished ``none``): the device now waits for a reboot and a ``-c`` confirmation.
INSTALLED_DETAIL = "All Chunks Installed."

# --- test-only signing key ----------------------------------------------------------------------
# A fixed RSA-2048 key used ONLY to sign throwaway test bundles. It is public; never trust it.
_TEST_RSA_E = 65537
_TEST_RSA_N = int(
    "abaa844c6e1fd5417102f460ed3d88fd378fbdaf3a26a250ff3c14403f77ef75"
    "b4a29eff51ed96e1a83baa68db24b4c42fe986378fc6152c3aff3ba138a0dafe"
    "25372a517fdd0c522fb4a09d9a18be5ccb7066c1841bc930f5b69caa2e22118e"
    "b1bc0c338163d0ca49c39afc7355c58964584d7d559e22a66e7278a45c6a0dd2"
    "0e28c4ea97e4404a61cead8331fc04e27c4293666186c830b00662405c02a3b6"
    "ca02d2fe6ea2741dbda925b9545f7ee2145f63b0d26cb3dc00f2df74adfd6748"
    "25cd5d36566f92c182d80af0cccb116c6c326e37c3d5b71fa7c7d671c4f246d4"
    "f08a71eacb805f57a5e922a740804fe7f50e16e25d904970d4178de0497f7fdf",
    16,
)
_TEST_RSA_D = int(
    "16967740a9f4dd00a162d1790cd3b34f6e477c49598e1fd42736bbe0c04e8309"
    "aa87ae02cbc046c17bd0c3597761b064bd7bd8173e29c2e61baa887ec18ec381"
    "fc04f2e28a6a86e68189c8e08942dc397ae35801fa8f6abd05cd2376c3b48e8e"
    "dcc01b9d8e0198f0251dec7f6f459d450e190db3d7822e9900f61053157de197"
    "7210dd71a288dc91de940317c27268e3ed17300ec2fb64ccfad24641c0081e8b"
    "0208077d9197dc7db7feeb1d216666a5ee046c2f742b613296785f3d9407b8dc"
    "a3fd9e6de73aa23fe39b95c07325bb8d15643ade296280ec735566e21e181ffd"
    "8bed6710b138e4adb29a13dc4155aa503efdd01b284db6cde3fe937a17a993d1",
    16,
)
_CERT_NAME = "skyfleet-test-signer"


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _der(0x31, b"".join(sorted(parts)))


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


_NULL = b"\x05\x00"
_SHA256 = _seq(_oid("2.16.840.1.101.3.4.2.1"), _NULL)
_RSA = _seq(_oid("1.2.840.113549.1.1.1"), _NULL)
_SHA256_RSA = _seq(_oid("1.2.840.113549.1.1.11"), _NULL)
_SERIAL = 0x5C1F1EE7
_NAME = _seq(_set(_seq(_oid("2.5.4.3"), _der(0x0C, _CERT_NAME.encode()))))


def _rsa_sign(message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 under the test key."""
    k = (_TEST_RSA_N.bit_length() + 7) // 8
    digest_info = _seq(_SHA256, _der(0x04, hashlib.sha256(message).digest()))
    encoded = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
    signature = pow(int.from_bytes(encoded, "big"), _TEST_RSA_D, _TEST_RSA_N)
    return signature.to_bytes(k, "big")


@lru_cache(maxsize=1)
def _test_cert_der() -> bytes:
    """Self-signed X.509 v3 certificate for the test key, valid 2000-01-01 .. 2049-12-31."""
    public_key = _seq(_int(_TEST_RSA_N), _int(_TEST_RSA_E))
    spki = _seq(_RSA, _der(0x03, b"\x00" + public_key))
    validity = _seq(_der(0x17, b"000101000000Z"), _der(0x17, b"491231235959Z"))
    basic_constraints = _seq(_oid("2.5.29.19"), _der(0x04, _seq(_der(0x01, b"\xff"))))
    extensions = _der(0xA3, _seq(basic_constraints))
    tbs = _seq(
        _der(0xA0, _int(2)), _int(_SERIAL), _SHA256_RSA, _NAME, validity, _NAME, spki, extensions
    )
    return _seq(tbs, _SHA256_RSA, _der(0x03, b"\x00" + _rsa_sign(tbs)))


def signer_certificate_pem() -> str:
    """PEM of the certificate that verifies bundles made by :func:`build_swu`."""
    b64 = base64.b64encode(_test_cert_der()).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def cms_sign(content: bytes) -> bytes:
    """Detached CMS ``SignedData`` (DER) over ``content``, as ``openssl cms -sign -binary``."""
    signer_info = _seq(
        _int(1),
        _seq(_NAME, _int(_SERIAL)),
        _SHA256,
        _RSA,
        _der(0x04, _rsa_sign(content)),
    )
    signed_data = _seq(
        _int(1),
        _set(_SHA256),
        _seq(_oid("1.2.840.113549.1.7.1")),
        _der(0xA0, _test_cert_der()),
        _set(signer_info),
    )
    return _seq(_oid("1.2.840.113549.1.7.2"), _der(0xA0, signed_data))


# --- .swu bundles -------------------------------------------------------------------------------


def _cfg_str(value: str) -> str:
    """A libconfig string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cpio_entry(name: str, data: bytes, ino: int) -> bytes:
    """One cpio "newc" (070701) entry, header and data each padded to 4 bytes."""
    encoded = name.encode() + b"\x00"
    fields = (ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    out = b"070701" + "".join(f"{v:08X}" for v in fields).encode() + encoded
    out += b"\x00" * (-len(out) % 4)
    return out + data + b"\x00" * (-len(data) % 4)


def sw_description(*, version: str, payload: bytes, install_path: Path) -> str:
    """The libconfig ``sw-description`` :func:`build_swu` puts in the bundle."""
    return (
        "software =\n{\n"
        f"\tversion = {_cfg_str(version)};\n"
        '\tdescription = "skyfleet test bundle";\n'
        f"\thardware-compatibility: [ {_cfg_str(HW_REVISION)} ];\n"
        "\tfiles: (\n\t\t{\n"
        '\t\t\tfilename = "payload.bin";\n'
        '\t\t\ttype = "rawfile";\n'
        f"\t\t\tpath = {_cfg_str(str(install_path))};\n"
        f'\t\t\tsha256 = "{hashlib.sha256(payload).hexdigest()}";\n'
        '\t\t\tproperties: { create-destination = "true"; };\n'
        "\t\t}\n\t);\n};\n"
    )


def build_swu(dest: Path, *, version: str, payload: bytes, install_path: Path) -> Path:
    """Write a signed ``.swu`` that installs ``payload`` to ``install_path`` (``rawfile``).

    The bundle is a cpio newc archive: ``sw-description`` (libconfig), ``sw-description.sig``
    (CMS, test key), ``payload.bin``, trailer. ``install_path`` should be absolute; missing
    parent directories are created by swupdate (``create-destination``). Serve it under an
    artifact ``filename`` ending in ``.swu`` or suricatta skips it. Returns ``dest``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> swu = build_swu(d / "u.swu", version="1.2", payload=b"hi", install_path=d / "out")
    >>> swu.read_bytes()[:6], len(swu.read_bytes()) % 512
    (b'070701', 0)
    >>> shutil.rmtree(d)
    """
    description = sw_description(version=version, payload=payload, install_path=install_path)
    entries = [
        ("sw-description", description.encode()),
        ("sw-description.sig", cms_sign(description.encode())),
        ("payload.bin", payload),
    ]
    blob = b"".join(_cpio_entry(n, d, i + 1) for i, (n, d) in enumerate(entries))
    blob += _cpio_entry("TRAILER!!!", b"", 0)
    blob += b"\x00" * (-len(blob) % 512)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(blob)
    return dest


# --- running suricatta --------------------------------------------------------------------------

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")


class SuricattaProcess(subprocess.Popen[bytes]):
    """A running ``swupdate -u`` with the paths a test needs to look at."""

    workdir: Path
    log_path: Path
    config_path: Path
    postupdate_marker: Path
    tmpdir: Path
    own_tmpdir: bool

    def log_text(self) -> str:
        """Everything swupdate has written so far (stdout and stderr, all starts)."""
        return self.log_path.read_text(errors="replace")

    def postupdate_runs(self) -> int:
        """How many times suricatta ran its post-update ("reboot") command."""
        if not self.postupdate_marker.exists():
            return 0
        return len(self.postupdate_marker.read_text().splitlines())


def _short_tmpdir(workdir: Path) -> tuple[Path, bool]:
    """A TMPDIR whose socket paths fit in sun_path (108 bytes)."""
    candidate = workdir / "tmp"
    if len(str(candidate)) + len("/sockinstctrl") < 100:
        candidate.mkdir(parents=True, exist_ok=True)
        return candidate, False
    return Path(tempfile.mkdtemp(prefix="swu-")), True


def write_config(
    *,
    workdir: Path,
    url: str,
    tenant: str,
    device_id: str,
    target_token: str | None,
    gateway_token: str | None = None,
    poll_s: int = 1,
    attributes: Mapping[str, str] | None = None,
) -> Path:
    """Write ``swupdate.cfg``, the signer certificate and a harmless post-update script."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert = workdir / "signer-cert.pem"
    cert.write_text(signer_certificate_pem())
    marker = workdir / "postupdate.marker"
    script = workdir / "postupdate.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# Stand-in for the reboot a real device does after an update: just leave a mark.\n"
        f'echo "postupdate $(date +%s) $*" >> {shlex.quote(str(marker))}\n'
    )
    script.chmod(0o755)
    attrs = {"hw_revision": HW_REVISION} if attributes is None else dict(attributes)
    identify = ",\n".join(
        f"\t{{ name = {_cfg_str(k)}; value = {_cfg_str(v)}; }}" for k, v in attrs.items()
    )
    tokens = ""
    if target_token:
        tokens += f"\ttargettoken = {_cfg_str(target_token)};\n"
    if gateway_token:
        tokens += f"\tgatewaytoken = {_cfg_str(gateway_token)};\n"
    globals_section = (
        "globals :\n{\n"
        "\tverbose = true;\n"
        "\tloglevel = 6;\n"
        f"\tpublic-key-file = {_cfg_str(str(cert))};\n"
        f"\tpostupdatecmd = {_cfg_str(str(script))};\n"
        "};\n"
    )
    identify_section = f"identify : (\n{identify}\n);\n" if attrs else ""
    suricatta_section = (
        "suricatta :\n{\n"
        f"\ttenant = {_cfg_str(tenant)};\n"
        f"\tid = {_cfg_str(device_id)};\n"
        f"\turl = {_cfg_str(url)};\n"
        f"\tpolldelay = {int(poll_s)};\n"
        "\tretry = 3;\n"
        '\tretrywait = "1";\n'  # read as a string: an int is silently ignored (5 s wait)
        f"{tokens}"
        "};\n"
    )
    path = workdir / "swupdate.cfg"
    path.write_text(globals_section + identify_section + suricatta_section)
    return path


def start_suricatta(
    *,
    url: str,
    tenant: str,
    device_id: str,
    target_token: str,
    workdir: Path,
    poll_s: int = 1,
    confirm: bool = False,
    attributes: Mapping[str, str] | None = None,
    gateway_token: str | None = None,
    extra_args: Sequence[str] = (),
) -> SuricattaProcess:
    """Start ``swupdate`` in suricatta (hawkBit) mode against ``url``; return the process.

    ``url`` is the server root (``http://127.0.0.1:PORT``); suricatta appends
    ``/{tenant}/controller/v1/{device_id}``. ``target_token`` is sent as
    ``Authorization: TargetToken …`` (pass ``""`` and ``gateway_token`` for ``GatewayToken``).
    ``poll_s`` is only the interval until the server's ``config.polling.sleep`` takes over.
    ``attributes`` become the configData PUT body ``data`` (default ``{"hw_revision": "1.0"}``;
    ``{}`` sends none). ``confirm=True`` starts with ``-c 2``: the "after reboot" start that
    reports the pending action as ``closed``/``success``.

    Output goes to ``workdir/swupdate.log`` (appended, so restarts share one log). The
    post-update command only appends to ``workdir/postupdate.marker``; the bootloader is
    ``none``; proxies are stripped from the environment. Stop it with :func:`stop_suricatta`.
    """
    if SWUPDATE is None:
        raise RuntimeError(SWUPDATE_SKIP_REASON)
    workdir = workdir.resolve()
    config = write_config(
        workdir=workdir,
        url=url,
        tenant=tenant,
        device_id=device_id,
        target_token=target_token,
        gateway_token=gateway_token,
        poll_s=poll_s,
        attributes=attributes,
    )
    tmpdir, own_tmpdir = _short_tmpdir(workdir)
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env.update(TMPDIR=str(tmpdir), no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    command = [
        SWUPDATE,
        "-v",
        "-f",
        str(config),
        "-H",
        f"{HW_BOARD}:{HW_REVISION}",
        "-B",
        "none",
        *extra_args,
        "-u",
        "-c 2" if confirm else "-e",
    ]
    log_path = workdir / "swupdate.log"
    with log_path.open("ab") as log:
        log.write(f"=== start {time.time():.3f}: {shlex.join(command)}\n".encode())
        log.flush()
        proc = SuricattaProcess(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.workdir = workdir
    proc.log_path = log_path
    proc.config_path = config
    proc.postupdate_marker = workdir / "postupdate.marker"
    proc.tmpdir = tmpdir
    proc.own_tmpdir = own_tmpdir
    return proc


def stop_suricatta(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """Stop a process from :func:`start_suricatta`: SIGTERM, then SIGKILL after ``timeout``.

    Signals go to the process group it leads (swupdate forks suricatta, a downloader and the
    post-update script). Returns the exit status (negative: killed by that signal).
    """
    pgid = proc.pid  # start_new_session=True: the group id is the leader's pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    # Children that outlived the leader (same group) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if isinstance(proc, SuricattaProcess) and proc.own_tmpdir:
        shutil.rmtree(proc.tmpdir, ignore_errors=True)
    return proc.returncode


def suricatta_ipc(proc: SuricattaProcess, *args: str, timeout: float = 10.0) -> str:
    """Run ``swupdate-ipc ARGS`` against this instance; return its output.

    ``suricatta_ipc(p, "hawkbitcfg", "-t")`` polls the server now; ``"hawkbitcfg", "-p", "1"``
    pins the poll interval (ignoring ``config.polling.sleep``);
    ``"sendtohawkbit", "7", "2", "success", "closed", "detail"`` posts a feedback for action 7
    (only if the server still offers action 7).
    """
    if SWUPDATE_IPC is None:
        raise RuntimeError("swupdate-ipc is not installed")
    env = dict(os.environ, TMPDIR=str(proc.tmpdir))
    done = subprocess.run(
        [SWUPDATE_IPC, *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=True,
    )
    return (done.stdout + done.stderr).decode(errors="replace")


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1
) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass; return the last."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
