"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader

from docjobs.auth.cache import VerifiedKeyCache
from docjobs.auth.keys import Principal
from docjobs.backends.base import Backend
from docjobs.config import Settings

from .errors import ApiError

PRINCIPAL_SCOPE_KEY = "docjobs.principal"
"""Where the gate leaves the principal of a request it authenticated. Its own scope key, not
``scope["state"]``: that dict may be shared by every request of the app."""

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Your API key (`dj_...`)."
)


# ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
async def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


BackendDep = Annotated[Backend, Depends(get_backend)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def authenticate(
    backend: Backend, verified: VerifiedKeyCache, api_key: str | None
) -> Principal:
    if not api_key or not api_key.strip():
        raise ApiError(401, "missing_api_key", "Send your API key in the X-API-Key header.")
    presented = api_key.strip()
    # A poller's key was verified a moment ago: answer from memory, without a thread hop.
    principal = verified.get(presented)
    if principal is not None:
        return principal
    principal = await backend.offload(backend.keys.authenticate, presented)
    if principal is None:
        raise ApiError(401, "invalid_api_key", "The API key is invalid or has been revoked.")
    verified.put(presented, principal)
    return principal


async def current_principal(
    request: Request, api_key: Annotated[str | None, Security(api_key_header)]
) -> Principal:
    # Requests with a body were authenticated before it was read (``gate``); keep that answer.
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if principal is None:
        # The backend from the app, not as a dependency: one fewer for FastAPI to resolve on
        # every request.
        state = request.app.state
        principal = await authenticate(state.backend, state.verified_keys, api_key)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AsyncFlag = Annotated[
    bool,
    Query(alias="async", description="Queue the work as a job and answer 202 at once."),
]
