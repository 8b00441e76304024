"""The hawkBit DDI wire format: the bodies devices send, and the ones they get back.

The request models (:class:`Feedback`, :class:`ConfigData`) validate what devices send; they
accept fields they do not know, as hawkBit does, because device clients send more than the
server reads. The response models are documentation only: the routes build their answers as
plain dicts and return them as they are (``response_model=None``), so that nothing a real
hawkBit client reads can change by accident; the models put the answers' shape in the OpenAPI
document, where the fuzz test holds every answer to it. A field renamed, dropped or retyped in a
route then fails the test instead of a fleet.

The ``responses`` dicts at the end say what each kind of device route documents: the errors
every route shares (:data:`DEVICE_ERRORS`), an empty 200 (:data:`ACCEPTED`), and the artifact
download's bytes, MD5 line and ranges (:data:`DOWNLOAD`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from skyfleet.server._errors import error_responses

__all__ = [
    "ACCEPTED",
    "DEVICE_ERRORS",
    "DOWNLOAD",
    "CancelAnswer",
    "ConfigData",
    "DeploymentAnswer",
    "Feedback",
    "FeedbackStatus",
    "PollAnswer",
]


# --- what devices send ---------------------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")
    finished: Literal["success", "failure", "none"] = "none"


class FeedbackStatus(BaseModel):
    """Where the device is with an action (``execution``) and how it ended (``result``)."""

    model_config = ConfigDict(extra="allow")
    execution: Literal[
        "closed",
        "proceeding",
        "canceled",
        "scheduled",
        "rejected",
        "resumed",
        "downloaded",
        "download",
    ]
    result: _Result = Field(default_factory=_Result)
    details: list[str] = Field(default_factory=list)


class Feedback(BaseModel):
    """A DDI action feedback."""

    model_config = ConfigDict(extra="allow")
    id: str | int | None = None  # suricatta sends the action id as a number
    time: str | None = None
    status: FeedbackStatus


class ConfigData(BaseModel):
    """DDI ``configData``: attributes the device reports (``mode``: merge, replace or remove)."""

    model_config = ConfigDict(extra="allow")
    mode: Literal["merge", "replace", "remove"] = "merge"
    data: dict[str, Any] = Field(default_factory=dict)


# --- what devices get back (documentation only) --------------------------------------------------


class _Link(BaseModel):
    href: str = Field(description="An absolute URL, as the device addressed the server")


class _PollLinks(BaseModel):
    """Each link is there when there is something to do; none is ever null."""

    model_config = ConfigDict(populate_by_name=True)
    deployment_base: _Link | SkipJsonSchema[None] = Field(default=None, alias="deploymentBase")
    cancel_action: _Link | SkipJsonSchema[None] = Field(default=None, alias="cancelAction")
    installed_base: _Link | SkipJsonSchema[None] = Field(default=None, alias="installedBase")
    config_data: _Link | SkipJsonSchema[None] = Field(default=None, alias="configData")


class _Polling(BaseModel):
    sleep: str = Field(pattern=r"^\d{2,}:\d{2}:\d{2}$", description="HH:MM:SS until the next poll")


class _PollConfig(BaseModel):
    polling: _Polling


class PollAnswer(BaseModel):
    """The base poll's answer: when to poll again, and the links to what there is to do."""

    model_config = ConfigDict(populate_by_name=True)
    config: _PollConfig
    links: _PollLinks = Field(alias="_links")


class _Hashes(BaseModel):
    sha1: str
    md5: str
    sha256: str


class _ArtifactLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    download_http: _Link = Field(alias="download-http")
    md5sum_http: _Link = Field(alias="md5sum-http")


class _Artifact(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    filename: str
    hashes: _Hashes
    size: int = Field(ge=0, description="bytes")
    links: _ArtifactLinks = Field(alias="_links")


class _Chunk(BaseModel):
    part: str
    version: str
    name: str
    artifacts: list[_Artifact]


class _Deployment(BaseModel):
    download: Literal["skip", "attempt", "forced"]
    update: Literal["skip", "attempt", "forced"]
    chunks: list[_Chunk]


class _ActionHistory(BaseModel):
    status: str
    messages: list[str]


class DeploymentAnswer(BaseModel):
    """``deploymentBase`` and ``installedBase``: the release's chunks and artifacts."""

    model_config = ConfigDict(populate_by_name=True)
    id: str = Field(description="The action id (a string, as hawkBit sends it)")
    deployment: _Deployment
    action_history: _ActionHistory = Field(alias="actionHistory")


class _StopId(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    stop_id: str = Field(alias="stopId")


class CancelAnswer(BaseModel):
    """``cancelAction``: the action the device should stop working on."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    cancel_action: _StopId = Field(alias="cancelAction")


# --- the responses each kind of device route documents ---------------------------------------

#: The errors every device route can answer with: a missing or wrong token, an unknown tenant (or
#: device, action, artifact), a path parameter out of range, a device over its request rate, a
#: busy database. Routes with a body add 400 and 413; feedback adds 409.
DEVICE_ERRORS = error_responses(401, 404, 422, 429, 503)

#: A report the server took: 200 with an empty body (and no content type).
ACCEPTED: dict[int | str, dict[str, Any]] = {200: {"description": "Accepted (an empty body)"}}

_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

#: An artifact download: the bytes (or a part of them, for a Range header), or the MD5 line.
DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The artifact's bytes, or for ``FILENAME.MD5SUM`` its MD5 line",
        "content": {**_BYTES, "text/plain": {"schema": {"type": "string"}}},
    },
    206: {"description": "The byte range a Range header asked for", "content": _BYTES},
    416: {"description": "A Range header outside the artifact (Content-Range: its size)"},
    **error_responses(400),
}
