"""Telemetry over MQTT: the server's subscription, on paho-mqtt (MQTT 5).

The server subscribes to ``skyfleet/{tenant}/devices/+/telemetry`` at QoS 1 with a fixed client
id and a session that outlives the connection (clean start off, a session expiry interval), so
the broker keeps what devices publish while the server is down or restarting and delivers it
when the server is back. Messages are acknowledged only once the batch that holds them is
committed (manual acks, in order), so a server that dies loses nothing the broker accepted:
the broker delivers it again, and the store keeps one copy (one row per device and device time).
The broker may send up to :data:`RECEIVE_MAXIMUM` messages ahead of the acks.

One process subscribes: with ``serve --workers N`` (PostgreSQL) the processes take turns holding
a PostgreSQL advisory lock named after the client id, and only the holder connects; if it dies,
its lock goes with its connection and another process takes over within
:data:`LEASE_RETRY_S`. (A shared subscription, ``$share/...``, would need a stable client id
and session per process, which uvicorn's worker processes do not have.)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from skyfleet import store
from skyfleet.server._ingest import TelemetryIngest
from skyfleet.telemetry import MqttUrl, telemetry_filter

__all__ = ["RECEIVE_MAXIMUM", "MqttSubscriber"]

log = logging.getLogger("skyfleet.mqtt")

#: Messages the broker may send before the server acknowledges them (MQTT 5 Receive Maximum).
RECEIVE_MAXIMUM = 65535
#: How often a process that does not hold the subscription tries to take it, and how often the
#: holder checks that it still does (seconds).
LEASE_RETRY_S = 5.0
LEASE_CHECK_S = 5.0
#: How long the lease's liveness check may take before the lease counts as lost (seconds).
LEASE_TIMEOUT_S = 3.0
#: The pause before a new connection that asks the broker for messages again (seconds).
REDELIVER_DELAY_S = 1.0


class _Lease:
    """Who may subscribe. SQLite: the one server process. PostgreSQL: the holder of an advisory
    lock on a connection of its own."""

    def __init__(self, db: store.Store, name: str) -> None:
        self._url = (
            db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            if db.dialect == "postgresql"
            else None
        )
        digest = hashlib.sha256(f"skyfleet-mqtt:{name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> bool:
        if self._url is None:
            return True
        # A check that cannot answer must fail in time, not hang (while a hung holder thinks it
        # holds the lock, the database may have ended its session and given the lock to
        # another process: two clients with one client id). The statement timeout bounds a
        # server that does not answer; the TCP settings a network that has gone silent.
        timeout_ms = int(LEASE_TIMEOUT_S * 1000)
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=5,
                keepalives=1,
                keepalives_idle=max(1, int(LEASE_CHECK_S)),
                keepalives_interval=1,
                keepalives_count=int(LEASE_TIMEOUT_S),
                tcp_user_timeout=timeout_ms,
            )
        except psycopg.Error as exc:
            log.warning("cannot reach the database to take the MQTT subscription: %s", exc)
            return False
        try:
            conn.execute(f"SET statement_timeout = {timeout_ms}")
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot take the MQTT subscription lock: %s", exc)
            row = None
        if not (row and row[0]):
            with contextlib.suppress(psycopg.Error):
                conn.close()
            return False
        self._conn = conn
        return True

    def alive(self) -> bool:
        if self._url is None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()  # the lock goes with the session


class MqttSubscriber:
    """Subscribes to the tenant's telemetry on the broker at ``url`` and feeds ``ingest``.

    ``client_id`` names the session the broker keeps for ``session_expiry_s`` seconds after a
    disconnect. :meth:`start` returns at once: connecting, reconnecting (the broker restarted)
    and waiting for the subscription (another process holds it) happen in the background.
    """

    def __init__(
        self,
        url: MqttUrl,
        ingest: TelemetryIngest,
        db: store.Store,
        *,
        tenant: str,
        client_id: str,
        session_expiry_s: float,
    ) -> None:
        self.url = url
        self.ingest = ingest
        self.tenant = tenant
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        #: Set while the subscription is in place (the broker acknowledged it).
        self.subscribed = threading.Event()
        self._lease = _Lease(db, client_id)
        self._client: mqtt.Client | None = None
        self._stopping = threading.Event()
        self._paused = False
        # Set to wake the supervisor: to stop, or for a new connection (_again: redelivery).
        self._wake = threading.Event()
        self._again = False
        # Acks belong to one connection: a message's packet id means nothing on the next one.
        # The epoch moves when a connection ends or starts; an ack checks it under the lock.
        self._epoch = 0
        self._ack_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start taking telemetry (in the background)."""
        self._thread = threading.Thread(target=self._supervise, name="skyfleet-mqtt", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Take no more messages (the broker keeps them for the session)."""
        self._paused = True

    def stop(self) -> None:
        """Disconnect, keeping the session, and give up the subscription."""
        self._paused = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            if not self._lease.acquire():
                self._stopping.wait(LEASE_RETRY_S)
                continue
            client = self._connect()
            try:
                while not self._stopping.is_set():
                    self._wake.wait(LEASE_CHECK_S)
                    self._wake.clear()
                    if self._stopping.is_set():
                        break
                    if not self._lease.alive():
                        log.warning("lost the MQTT subscription lock; another process takes over")
                        break
                    if self._again:
                        self._again = False
                        self._disconnect(client)
                        if self._stopping.wait(REDELIVER_DELAY_S):
                            break
                        client = self._connect()
            finally:
                self._disconnect(client)
                self._lease.release()

    def _connect(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = int(self.session_expiry_s)
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=False, properties=properties
        )
        self._client = client
        client.loop_start()
        return client

    def _disconnect(self, client: mqtt.Client) -> None:
        with self._ack_lock:
            self._epoch += 1
            self._client = None
        client.disconnect()
        client.loop_stop()
        self.subscribed.clear()

    # --- paho's callbacks (its network thread) -----------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.url.host, reason)
            return
        with self._ack_lock:
            self._epoch += 1
        client.subscribe(telemetry_filter(self.tenant), options=SubscribeOptions(qos=1))
        log.info(
            "connected to the MQTT broker %s:%d as %s (session %s); subscribing to %s",
            self.url.host,
            self.url.port,
            self.client_id,
            "resumed" if flags.session_present else "new",
            telemetry_filter(self.tenant),
        )

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if all(not r.is_failure for r in reasons):
            self.subscribed.set()
        else:
            log.error(
                "the MQTT broker refused the subscription to %s: %s",
                telemetry_filter(self.tenant),
                ", ".join(str(r) for r in reasons),
            )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._ack_lock:
            self._epoch += 1
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._paused:
            return  # not acknowledged: the broker delivers it again to the next connection
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""  # refused as invalid, and acknowledged
        self.ingest.offer(self, topic, message.payload, (self._epoch, message.mid, message.qos))

    # --- acks (the ingest thread) ------------------------------------------------------------

    def redeliver(self, tokens: Sequence[Any]) -> None:
        """Have the broker deliver messages of the current connection again, that could not be
        stored: a new connection (the broker resends what is unacknowledged only then)."""
        with self._ack_lock:
            if self._client is None or all(epoch != self._epoch for epoch, _, _ in tokens):
                return  # their connection is gone already: the broker resends them anyway
        log.warning("reconnecting to the MQTT broker to have %d messages sent again", len(tokens))
        self._again = True
        self._wake.set()

    def committed(self, tokens: Sequence[Any]) -> None:
        """Acknowledge stored messages, in the order they came, if their connection is the
        current one (else the broker delivers them again and the store keeps one copy)."""
        with self._ack_lock:
            client, epoch = self._client, self._epoch
            if client is None:
                return
            for message_epoch, mid, qos in tokens:
                if message_epoch == epoch and qos:
                    client.ack(mid, qos)
