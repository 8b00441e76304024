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
from skyfleet.store._keys import generate_keys, init_trust, load_keys
from skyfleet.store._polls import PollViewReader, open_poll_reader
from skyfleet.store._rollouts import (
    create_rollout,
    get_rollout,
    list_actions,
    list_rollouts,
    operate,
    rollback,
)
from skyfleet.store._secrets import private_dir, read_private, write_private
from skyfleet.store._trust import (
    REPOS,
    director_repo,
    director_targets,
    image_targets,
    metadata,
    publish,
    refresh_repo,
    repo_head,
    root,
    save_root,
)

__all__ = [
    "DEFAULT_URL",
    "OPERATOR_ROLES",
    "REPOS",
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
    "director_repo",
    "director_targets",
    "ensure_admin_token",
    "evaluate",
    "generate_keys",
    "get_artifact",
    "get_device",
    "get_release",
    "get_rollout",
    "hash_token",
    "image_targets",
    "init_trust",
    "installed_action",
    "iter_file",
    "list_actions",
    "list_artifacts",
    "list_audit",
    "list_devices",
    "list_operator_tokens",
    "list_releases",
    "list_rollouts",
    "load_keys",
    "metadata",
    "offered_action",
    "open_poll_reader",
    "open_store",
    "operate",
    "operator_for_token",
    "poll_views",
    "private_dir",
    "publish",
    "read_private",
    "refresh_repo",
    "register_devices",
    "repo_head",
    "revoke_operator_token",
    "rollback",
    "root",
    "save_artifact",
    "save_root",
    "sweep",
    "token_matches",
    "touch_devices",
    "update_reported",
    "write_blob",
    "write_private",
]
