"""Login for API clients (OAuth2 password flow) and long-lived API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from server.api.deps import Ctx, CurrentUser, PageDep, SessionDep, SessionRoute, login_allowed
from server.errors import NotAuthenticated
from server.schemas import ApiTokenCreate, ApiTokenCreated, ApiTokenOut, Id, Token, UserOut, error_responses
from server.services import users

router = APIRouter(tags=["auth"], route_class=SessionRoute, responses=error_responses(400, 401, 422))


@router.post("/auth/token", response_model=Token, responses=error_responses(429))
def login_for_token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: Ctx, session: SessionDep
) -> Token:
    """OAuth2 password flow: form fields ``username`` and ``password``."""
    login_allowed(request, ctx, form.username)
    user = users.authenticate(session, username=form.username, password=form.password, passwords=ctx.passwords)
    if user is None:
        raise NotAuthenticated("wrong username or password")
    _, token = users.create_token(
        session, user=user, name=users.PASSWORD_FLOW_TOKEN, ttl_s=ctx.settings.access_token_ttl_s
    )
    session.commit()
    return Token(access_token=token)


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("/tokens", response_model=ApiTokenCreated, status_code=status.HTTP_201_CREATED)
def create_api_token(body: ApiTokenCreate, user: CurrentUser, session: SessionDep) -> ApiTokenCreated:
    """A long-lived token for CI (``Authorization: Bearer <token>``); shown once."""
    ttl = body.ttl_days * 86400 if body.ttl_days else None
    row, token = users.create_token(session, user=user, name=body.name, ttl_s=ttl)
    session.commit()
    return ApiTokenCreated(**ApiTokenOut.model_validate(row).model_dump(), token=token)


@router.get("/tokens", response_model=list[ApiTokenOut])
def list_api_tokens(user: CurrentUser, session: SessionDep, page: PageDep) -> list[ApiTokenOut]:
    """The user's tokens that are not revoked, oldest first (every password login adds one)."""
    tokens = users.list_tokens(session, user=user)[page.offset : page.offset + page.limit]
    return [ApiTokenOut.model_validate(t) for t in tokens]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
def revoke_api_token(token_id: Id, user: CurrentUser, session: SessionDep) -> None:
    users.revoke_token(session, user=user, token_id=token_id)
    session.commit()
