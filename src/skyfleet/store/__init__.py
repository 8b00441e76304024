"""Persistence: SQLAlchemy 2 over SQLite (WAL, the embedded default) or PostgreSQL.

Every function takes an open connection (one transaction) and the time in UNIX seconds; the
server decides when to commit. Schema changes are Alembic migrations under ``migrations/``.
"""

from __future__ import annotations

from skyfleet.store._access import (
    OPERATOR_ROLES,
    Operator,
    count_operators,
    create_operator_token,
    ensure_admin_token,
    list_operator_tokens,
    operator_for_token,
    revoke_operator_token,
)
from skyfleet.store._audit import list_audit
from skyfleet.store._catalog import (
    BlobWriter,
    artifact_path,
    check_filename,
    create_release,
    get_artifact,
    get_release,
    iter_file,
    list_artifacts,
    list_releases,
    save_artifact,
    write_blob,
)
from skyfleet.store._device_api import (
    Offer,
    PollView,
    apply_feedback,
    deployment,
    device_artifact,
    installed_action,
    offered_action,
    poll_views,
)
from skyfleet.store._engine import DEFAULT_URL, Store, open_store
from skyfleet.store._fleet import (
    UNKNOWN_HW,
    NewDevice,
    device_auth,
    get_device,
    hash_token,
    list_devices,
    register_devices,
    token_matches,
    touch_devices,
    update_reported,
)
from skyfleet.store._judge import evaluate, sweep
from skyfleet.store._polls import PollViewReader, open_poll_reader
from skyfleet.store._rollouts import (
    create_rollout,
    get_rollout,
    list_actions,
    list_rollouts,
    operate,
    rollback,
)

__all__ = [
    "DEFAULT_URL",
    "OPERATOR_ROLES",
    "UNKNOWN_HW",
    "BlobWriter",
    "NewDevice",
    "Offer",
    "Operator",
    "PollView",
    "PollViewReader",
    "Store",
    "apply_feedback",
    "artifact_path",
    "check_filename",
    "count_operators",
    "create_operator_token",
    "create_release",
    "create_rollout",
    "deployment",
    "device_artifact",
    "device_auth",
    "ensure_admin_token",
    "evaluate",
    "get_artifact",
    "get_device",
    "get_release",
    "get_rollout",
    "hash_token",
    "installed_action",
    "iter_file",
    "list_actions",
    "list_artifacts",
    "list_audit",
    "list_devices",
    "list_operator_tokens",
    "list_releases",
    "list_rollouts",
    "offered_action",
    "open_poll_reader",
    "open_store",
    "operate",
    "operator_for_token",
    "poll_views",
    "register_devices",
    "revoke_operator_token",
    "rollback",
    "save_artifact",
    "sweep",
    "token_matches",
    "touch_devices",
    "update_reported",
    "write_blob",
]
