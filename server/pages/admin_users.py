"""Admin pages for people: users (create, role, deactivate, one-time password links), the page where a user
sets a password from such a link, roster import with a preview, and API tokens. The course's own settings
are in :mod:`server.pages.admin_course`.

The pages call the same services as the JSON API and the command line (``server.services.users``); a form
with a mistake comes back with the error beside the field and what was typed; deactivating and revoking ask
on a confirmation page first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from server.api.deps import SESSION_COOKIE, AppContext, Ctx, SessionDep, SessionRoute
from server.errors import DomainError, InvalidInput, NotFound
from server.models import Role, User
from server.pages.routes import (
    TEMPLATES,
    Admin,
    PageAuth,
    PageNumber,
    Pager,
    _set_session,
    check_csrf,
    confirm_page,
    notice,
    page,
    parse_number,
)
from server.schemas import ApiTokenCreate, Id, SearchText, Username, validation_message
from server.services import users

router = APIRouter(include_in_schema=False, route_class=SessionRoute)

MAX_ROSTER_BYTES = 5 * 1024 * 1024
FieldText = Annotated[str, Form(max_length=1024)]
Csrf = Annotated[str, Form(max_length=256)]


def _link(request: Request, secret: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/password/{secret}"


@router.get("/admin")
def admin_home(_: Admin) -> Response:
    return RedirectResponse("/admin/users", status_code=303)


# Users


def _users_page(
    request: Request,
    auth: PageAuth,
    session: Session,
    *,
    q: str = "",
    pager: Pager | None = None,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    pager = pager or Pager(1)
    found = pager.take(users.list_users(session, search=q, limit=pager.limit, offset=pager.offset))
    return page(
        request,
        "admin_users.html",
        auth,
        status_code=status_code,
        users=found,
        counts=users.count_users(session),
        q=q,
        pager=pager,
        roles=list(Role),
        error=error,
        typed=typed or {"role": "student"},
    )


@router.get("/admin/users")
def users_page(
    request: Request, auth: Admin, session: SessionDep, q: SearchText = "", page_number: PageNumber = 1
) -> Response:
    return _users_page(request, auth, session, q=q, pager=Pager(page_number))


@router.post("/admin/users")
def create_user(
    request: Request,
    auth: Admin,
    ctx: Ctx,
    session: SessionDep,
    username: FieldText = "",
    full_name: FieldText = "",
    email: FieldText = "",
    role: FieldText = "student",
    password: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    """A new user. Without a password the page shows a one-time invitation link to send them."""
    check_csrf(auth.data, csrf_token)
    typed = {"username": username, "full_name": full_name, "email": email, "role": role}  # never the password
    try:
        user = users.create_user(
            session,
            username=username.strip(),
            role=parse_role(role),
            password=password or None,
            full_name=full_name.strip(),
            email=email.strip() or None,
            passwords=ctx.passwords,
        )
        link = None if password else users.create_password_link(session, user=user, purpose="invite", actor=auth.user)
    except DomainError as exc:
        session.rollback()
        return _users_page(request, auth, session, error=exc.message, typed=typed, status_code=exc.status_code)
    session.commit()
    if link is None:
        return RedirectResponse(f"/admin/users/{quote(user.username)}?created=1", status_code=303)
    return _user_page(request, auth, session, user, link=_link(request, link), link_purpose="invite", created=True)


def parse_role(raw: str) -> Role:
    try:
        return Role(raw.strip().lower())
    except ValueError:
        raise InvalidInput(f"role: choose one of {', '.join(r.value for r in Role)}") from None


def _user_page(
    request: Request,
    auth: PageAuth,
    session: Session,
    user: User,
    *,
    link: str | None = None,
    link_purpose: str | None = None,
    created: bool = False,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "admin_user.html",
        auth,
        status_code=status_code,
        target=user,
        tokens=users.list_tokens(session, user=user),
        roles=list(Role),
        link=link,
        link_purpose=link_purpose,
        created=created,
        notice=notice,
        error=error,
    )


@router.get("/admin/users/{username}")
def user_page(
    request: Request, username: Username, auth: Admin, session: SessionDep, created: bool = False, done: str = ""
) -> Response:
    user = users.get_user(session, username=username)
    return _user_page(request, auth, session, user, created=created, notice=notice(done))


@router.post("/admin/users/{username}/role")
def change_role(
    request: Request,
    username: Username,
    auth: Admin,
    session: SessionDep,
    role: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    user = users.get_user(session, username=username)
    try:
        users.set_role(session, user=user, role=parse_role(role), actor=auth.user)
    except InvalidInput as exc:
        session.rollback()
        user = users.get_user(session, username=username)
        return _user_page(request, auth, session, user, error=exc.message, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/admin/users/{quote(username)}?done=role", status_code=303)


def _deactivate_confirmation(request: Request, auth: PageAuth, user: User, error: str | None = None) -> Response:
    return confirm_page(
        request,
        auth,
        title=f"Deactivate {user.username}?",
        message=f"{user.username} ({user.role.value}) will not be able to log in; every session of theirs ends "
        "now and their API tokens stop working.",
        details=[
            "Their submissions and grades are kept (a deactivated student leaves the gradebook).",
            "You can reactivate them later; their password and tokens work again then.",
        ],
        action=f"/admin/users/{quote(user.username)}/deactivate",
        button=f"Deactivate {user.username}",
        back=f"/admin/users/{quote(user.username)}",
        error=error,
    )


@router.get("/admin/users/{username}/deactivate")
def confirm_deactivate(request: Request, username: Username, auth: Admin, session: SessionDep) -> Response:
    user = users.get_user(session, username=username)
    return _deactivate_confirmation(request, auth, user)


@router.post("/admin/users/{username}/deactivate")
def deactivate(
    request: Request,
    username: Username,
    auth: Admin,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    user = users.get_user(session, username=username)
    if confirm != "yes":
        return _deactivate_confirmation(request, auth, user, error="Tick the box to confirm.")
    try:
        users.set_active(session, user=user, active=False, actor=auth.user)
    except InvalidInput as exc:
        session.rollback()
        return _deactivate_confirmation(request, auth, users.get_user(session, username=username), error=exc.message)
    session.commit()
    return RedirectResponse(f"/admin/users/{quote(username)}?done=deactivated", status_code=303)


@router.post("/admin/users/{username}/reactivate")
def reactivate(username: Username, auth: Admin, session: SessionDep, csrf_token: Csrf = "") -> Response:
    check_csrf(auth.data, csrf_token)
    users.set_active(session, user=users.get_user(session, username=username), active=True, actor=auth.user)
    session.commit()
    return RedirectResponse(f"/admin/users/{quote(username)}?done=reactivated", status_code=303)


@router.post("/admin/users/{username}/password-link")
def password_link(
    request: Request, username: Username, auth: Admin, session: SessionDep, csrf_token: Csrf = ""
) -> Response:
    """A one-time link to set a password (an invitation when the user has none yet), shown once."""
    check_csrf(auth.data, csrf_token)
    user = users.get_user(session, username=username)
    purpose: Literal["invite", "reset"] = "reset" if user.password_hash else "invite"
    try:
        secret = users.create_password_link(session, user=user, purpose=purpose, actor=auth.user)
    except InvalidInput as exc:
        session.rollback()
        user = users.get_user(session, username=username)
        return _user_page(request, auth, session, user, error=exc.message, status_code=exc.status_code)
    session.commit()
    return _user_page(request, auth, session, user, link=_link(request, secret), link_purpose=purpose)


# Setting a password from a link (no login: the link is the credential)


def _password_page(
    request: Request,
    ctx: AppContext,
    session: Session,
    secret: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE)) or ctx.signer.new(None)
    row = users.password_link(session, secret=secret)
    link = (row.user.username, row.purpose, row.expires_at) if row else None
    response = TEMPLATES.TemplateResponse(
        request,
        "password.html",
        {"csrf": data.csrf, "user": None, "link": link, "secret": secret, "error": error},
        status_code=status_code if link else NotFound.status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    _set_session(response, ctx, data)
    return response


@router.get("/password/{secret}")
def password_form(request: Request, secret: SearchText, ctx: Ctx, session: SessionDep) -> Response:
    return _password_page(request, ctx, session, secret)


@router.post("/password/{secret}")
def set_password(
    request: Request,
    secret: SearchText,
    ctx: Ctx,
    session: SessionDep,
    password: FieldText = "",
    repeat: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE))
    if data is None or csrf_token != data.csrf:
        return _password_page(
            request, ctx, session, secret, error="The form expired. Please try again.", status_code=400
        )
    try:
        if password != repeat:
            raise InvalidInput("the two passwords differ")
        users.use_password_link(session, secret=secret, password=password, passwords=ctx.passwords)
    except DomainError as exc:
        session.rollback()
        return _password_page(request, ctx, session, secret, error=exc.message, status_code=exc.status_code)
    session.commit()
    return RedirectResponse("/login?password=set", status_code=303)


# Roster import


def _roster_page(
    request: Request,
    auth: PageAuth,
    *,
    text: str = "",
    default_role: str = "student",
    plan: users.RosterPlan | None = None,
    result: tuple[int, int] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "admin_roster.html",
        auth,
        status_code=status_code,
        text=text,
        default_role=default_role,
        plan=plan,
        result=result,
        error=error,
    )


@router.get("/admin/roster")
def roster_page(request: Request, auth: Admin) -> Response:
    return _roster_page(request, auth)


async def _roster_text(request: Request) -> tuple[dict[str, str], str]:
    """The form's fields and the CSV: an uploaded file, else the pasted text."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_ROSTER_BYTES + 1)
        if len(raw) > MAX_ROSTER_BYTES:
            raise InvalidInput("roster CSV: larger than 5 MiB")
        try:
            return fields, raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("roster CSV: not UTF-8 text") from None
    text = fields.get("csv_text", "")
    if len(text) > MAX_ROSTER_BYTES:
        raise InvalidInput("roster CSV: larger than 5 MiB")
    return fields, text.lstrip("\ufeff")


@router.post("/admin/roster")
async def preview_roster(request: Request, auth: Admin, session: SessionDep) -> Response:
    """What the import would change, for the admin to check before applying it."""
    try:
        fields, text = await _roster_text(request)
    except InvalidInput as exc:
        return _roster_page(request, auth, error=exc.message, status_code=exc.status_code)
    check_csrf(auth.data, fields.get("csrf_token", ""))
    default_role = fields.get("default_role", "student")
    try:
        if not text.strip():
            raise InvalidInput("choose a CSV file or paste the roster")
        plan = users.plan_roster(session, text=text, default_role=parse_role(default_role))
    except InvalidInput as exc:
        return _roster_page(
            request, auth, text=text, default_role=default_role, error=exc.message, status_code=exc.status_code
        )
    return _roster_page(request, auth, text=text, default_role=default_role, plan=plan)


@router.post("/admin/roster/apply")
def apply_roster(
    request: Request,
    auth: Admin,
    ctx: Ctx,
    session: SessionDep,
    csv_text: Annotated[str, Form(max_length=MAX_ROSTER_BYTES)] = "",
    default_role: FieldText = "student",
    digest: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    """Apply the previewed import, unless the users changed since the preview (then preview again)."""
    check_csrf(auth.data, csrf_token)
    try:
        plan = users.plan_roster(session, text=csv_text, default_role=parse_role(default_role))
    except InvalidInput as exc:
        return _roster_page(
            request, auth, text=csv_text, default_role=default_role, error=exc.message, status_code=exc.status_code
        )
    if plan.digest != digest:
        return _roster_page(
            request,
            auth,
            text=csv_text,
            default_role=default_role,
            plan=plan,
            error="The users changed since the preview: check this preview and apply again.",
            status_code=409,
        )
    try:
        result = users.apply_roster(session, plan=plan, passwords=ctx.passwords)
    except DomainError as exc:  # e.g. a user created by someone else in between
        session.rollback()
        return _roster_page(
            request, auth, text=csv_text, default_role=default_role, error=exc.message, status_code=exc.status_code
        )
    session.commit()
    return _roster_page(request, auth, result=result)


# API tokens


def _tokens_page(
    request: Request,
    auth: PageAuth,
    session: Session,
    *,
    created: tuple[Any, str] | None = None,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "admin_tokens.html",
        auth,
        status_code=status_code,
        tokens=users.all_tokens(session),
        created=created,
        error=error,
        typed=typed or {"username": auth.user.username, "name": "", "ttl_days": ""},
        notice=notice,
    )


@router.get("/admin/tokens")
def tokens_page(request: Request, auth: Admin, session: SessionDep, done: str = "") -> Response:
    return _tokens_page(request, auth, session, notice=notice(done))


@router.post("/admin/tokens")
def create_token(
    request: Request,
    auth: Admin,
    session: SessionDep,
    username: FieldText = "",
    name: FieldText = "",
    ttl_days: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    """A bearer token for a user (CI usually); shown on this page once, only its hash is kept."""
    check_csrf(auth.data, csrf_token)
    typed = {"username": username, "name": name, "ttl_days": ttl_days}
    try:
        try:
            body = ApiTokenCreate(name=name.strip(), ttl_days=parse_number(ttl_days, "days", optional=True))
        except ValidationError as exc:
            raise InvalidInput(validation_message(exc).replace("ttl_days", "days")) from None
        user = users.get_user(session, username=username.strip())
        if not user.is_active:
            raise InvalidInput(f"{user.username} is deactivated")
        row, token = users.create_token(
            session, user=user, name=body.name, ttl_s=body.ttl_days * 86400 if body.ttl_days else None
        )
    except DomainError as exc:
        session.rollback()
        return _tokens_page(request, auth, session, error=exc.message, typed=typed, status_code=exc.status_code)
    session.commit()
    return _tokens_page(request, auth, session, created=(row, token))


def _revoke_confirmation(request: Request, auth: PageAuth, token: Any, error: str | None = None) -> Response:
    return confirm_page(
        request,
        auth,
        title=f"Revoke the token {token.name!r}?",
        message=f"The token {token.prefix}… of {token.user.username} stops working at once; "
        "whatever uses it (a CI job) gets 401 from now on.",
        details=["A revoked token cannot be restored; create a new one instead."],
        action=f"/admin/tokens/{token.id}/revoke",
        button="Revoke the token",
        back="/admin/tokens",
        error=error,
    )


@router.get("/admin/tokens/{token_id}/revoke")
def confirm_revoke(request: Request, token_id: Id, auth: Admin, session: SessionDep) -> Response:
    return _revoke_confirmation(request, auth, users.get_token(session, token_id=token_id))


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    token_id: Id,
    auth: Admin,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    token = users.get_token(session, token_id=token_id)
    if confirm != "yes":
        return _revoke_confirmation(request, auth, token, error="Tick the box to confirm.")
    users.revoke_token(session, user=auth.user, token_id=token_id)
    session.commit()
    return RedirectResponse("/admin/tokens?done=revoked", status_code=303)
