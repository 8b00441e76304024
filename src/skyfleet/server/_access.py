"""Who may call the operator API: ``Authorization: Bearer <token>`` and the token's role.

A route states the weakest role it needs (``Depends(viewer)``, ``operator``, ``admin``) and gets
the :class:`~skyfleet.store.Operator` whose name goes into the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from skyfleet import store
from skyfleet.errors import ForbiddenError, OperatorAuthError
from skyfleet.server._runtime import Runtime

__all__ = ["BEARER", "Admin", "Op", "Viewer", "check_operator"]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="operator token",
    description="An operator token: 'skyfleet token create NAME --role viewer|operator|admin'.",
)


def check_operator(rt: Runtime, token: str | None, role: str) -> store.Operator:
    """The operator a bearer ``token`` belongs to, if its role is ``role`` or stronger.

    :class:`OperatorAuthError` (401) for a missing, unknown or revoked token;
    :class:`ForbiddenError` (403) for a live token with too weak a role.
    """
    if not token:
        raise OperatorAuthError(
            "the operator API needs a token: send 'Authorization: Bearer <token>' "
            "(the CLI: --token or SKYFLEET_TOKEN)"
        )
    with rt.store.read() as conn:
        who = store.operator_for_token(conn, token)
    if who is None:
        raise OperatorAuthError("unknown or revoked operator token")
    if not who.may(role):
        raise ForbiddenError(f"operator {who.name!r} is a {who.role}; this needs {role} or above")
    return who


def _requires(role: str) -> object:
    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> store.Operator:
        rt: Runtime = request.app.state.runtime
        return check_operator(rt, credentials.credentials if credentials else None, role)

    dependency.__name__ = f"requires_{role}"
    return Depends(dependency)


#: A route parameter: the caller, who must be at least a viewer (reads).
Viewer = Annotated[store.Operator, _requires("viewer")]
#: At least an operator (changes devices, artifacts, releases, rollouts).
Op = Annotated[store.Operator, _requires("operator")]
#: An admin (tokens, signing roots).
Admin = Annotated[store.Operator, _requires("admin")]
