"""Administration of clients, client secrets, users, roles and the security event log.

The one path for every write to clients and accounts: the JSON admin API (``endpoints/admin.py``),
dynamic client registration (``admin/registration.py``) and the CLI all call this service; no HTTP
here. Every change is recorded as a security event named ``admin.<what>`` with the acting client or
person in ``actor``. Input is validated strictly (``validation.Body``): a refused request changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from authserver.accounts.passwords import PasswordPolicyError
from authserver.admin.client_keys import key_consistency_problems, key_metadata_view
from authserver.admin.models import (
    ClientCreate,
    ClientUpdate,
    Context,
    Rotation,
    UserCreate,
    UserUpdate,
    read,
)
from authserver.admin.validation import (
    AdminError,
    Body,
    conflict,
    invalid,
    iso,
    not_found,
    page,
    timestamp,
)
from authserver.keys.encryption import DecryptionError
from authserver.protocol import certificates
from authserver.secret_rotation import SecretRotation, new_webhook_secret
from authserver.services import Services
from authserver.storage.errors import Conflict, NotFound
from authserver.storage.sql.clients import ClientInfo, webhook_aad
from authserver.storage.sql.models import (
    Account,
    Client,
    ClientSecret,
    SecurityEvent,
)
from authserver.tokens.revocation import issued_before_reenabling

EVENT_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Set on the row after creation (the store's create does not take them).
CLIENT_CONTACT_FIELDS = ("owner_email", "notification_webhook")

Unlocker = Callable[[Account], Awaitable[None]]


@dataclass(frozen=True)
class Actor:
    """Who performs an administrative change: an admin client, a person through one, or the CLI."""

    client_id: str | None = None
    account_id: str | None = None
    via: str = "api"

    def describe(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "account_id": self.account_id, "via": self.via}

    def label(self) -> str:
        return f"{self.via}:{self.account_id or self.client_id or '-'}"


CLI = Actor(via="cli")


def client_view(info: ClientInfo, now: datetime | None = None) -> dict[str, Any]:
    body = info.public_dict()
    body["rate_limit_per_minute"] = info.rate_limit_per_minute
    if now is not None and not info.is_public:
        # RFC 7591 §3.2.1: seconds since the epoch, 0 when a secret never expires; here the last one to end.
        body["client_secret_expires_at"] = info.secret_expires_at(now)
    body.update(key_metadata_view(info))
    return body


def secret_view(row: ClientSecret, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "valid": row.revoked_at is None and (row.expires_at is None or row.expires_at > now),
        "revoked_at": iso(row.revoked_at),
        "rotated_at": iso(row.rotated_at),
        "replaces": row.replaces_id,
        # Automatic rotation: issued, not yet delivered to the webhook nor revealed.
        "pending_delivery": row.pending_secret_encrypted is not None,
        "last_used_at": iso(row.last_used_at),
        "use_count": row.use_count,
    }


def account_view(row: Account) -> dict[str, Any]:
    return {
        "account_id": row.account_id,
        "username": row.username,
        "email": row.email,
        "email_verified": row.email_verified,
        "name": row.name,
        "locale": row.locale,
        "roles": list(row.roles),
        "mfa_enabled": row.totp_enabled_at is not None,
        "disabled": row.disabled_at is not None,
        "disabled_at": iso(row.disabled_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def event_view(row: SecurityEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": iso(row.occurred_at),
        "event": row.event,
        "outcome": row.outcome,
        "client_id": row.client_id,
        "account_id": row.account_id,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "details": row.details,
    }


def listing(items: list[dict[str, Any]], limit: int, offset: int, more: bool) -> dict[str, Any]:
    return {"items": items, "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


class AdminService:
    def __init__(self, services: Services, *, unlock: Unlocker | None = None) -> None:
        self._s = services
        # Clears a brute-force lock (authserver.abuse.unlock on services.lockout unless given).
        self.unlock_hook = unlock or self._unlock_password_step

    async def _unlock_password_step(self, row: Account) -> None:
        from authserver.abuse import unlock

        await unlock(self._s.lockout, self._s.events, username=row.username, by="admin", account_id=row.account_id)

    # -- clients --------------------------------------------------------------------------------------

    def _context(self) -> Context:
        return Context(
            scopes=frozenset(self._s.settings.tokens.scopes), roles=tuple(self._s.settings.admin.roles),
            production=self._s.settings.server.production,
        )

    def _read_client(self, data: Any, *, creating: bool) -> dict[str, Any]:
        """The fields the body gave (explicit nulls of nullable fields kept), validated by the models."""
        _, present = read(ClientCreate if creating else ClientUpdate, data, context=self._context())
        return present

    @staticmethod
    def _check_client_consistency(merged: Mapping[str, Any]) -> None:
        errors: list[dict[str, str]] = []
        client_type = merged["client_type"]
        method = merged.get("token_endpoint_auth_method") or ("none" if client_type == "public" else "client_secret_basic")
        if (method == "none") != (client_type == "public"):
            errors.append({"field": "token_endpoint_auth_method", "message": "public clients use none; confidential clients another method (client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, tls_client_auth, self_signed_tls_client_auth)"})
        errors.extend({"field": f, "message": m} for f, m in certificates.check_metadata({**merged, "token_endpoint_auth_method": method}))
        errors.extend(key_consistency_problems({**merged, "token_endpoint_auth_method": method}))
        grants = merged.get("grant_types") or []
        if client_type == "public" and "client_credentials" in grants:
            errors.append({"field": "grant_types", "message": "client_credentials is for confidential clients only"})
        if "authorization_code" in grants and not merged.get("redirect_uris"):
            errors.append({"field": "redirect_uris", "message": "authorization_code needs at least one redirect URI"})
        if "refresh_token" in grants and "authorization_code" not in grants:
            errors.append({"field": "grant_types", "message": "refresh_token needs authorization_code"})
        if errors:
            raise invalid("The client settings are inconsistent.", errors)

    async def create_client(
        self, data: Any, *, actor: Actor, event: str = "admin.client_created", ip: str | None = None
    ) -> dict[str, Any]:
        """Validate and create; ``event`` names the security event (registration records its own)."""
        values = self._read_client(data, creating=True)
        self._check_client_consistency(values)
        values.setdefault("redirect_uris", [])
        values.setdefault("scopes", [])
        rate_limit = values.pop("rate_limit_per_minute", None)
        contacts = {name: values.pop(name) for name in CLIENT_CONTACT_FIELDS if values.get(name) is not None}
        if contacts.get("notification_webhook") and values.get("client_type") == "public":
            raise invalid("The request has invalid fields.", [{"field": "notification_webhook", "message": "public clients have no secret to rotate"}])
        args = {k: v for k, v in values.items() if v is not None}
        try:
            info, secret = await self._s.clients.create(**args)
        except Conflict:
            raise conflict("A client with this client_id exists.") from None
        except ValueError as error:
            raise invalid(str(error)) from None
        extra: dict[str, Any] = dict(contacts)
        webhook_secret = self._webhook_secret(info.client_id, extra)
        if rate_limit is not None:
            extra["rate_limit_per_minute"] = rate_limit
        if extra:
            await self._update_client_row(info.client_id, extra)
            info = await self._fresh_client(info.client_id)
        await self._s.events.record(
            event, "success", client_id=info.client_id, ip=ip, actor=actor.describe(),
            client_type=info.client_type, grant_types=list(info.grant_types), scopes=list(info.scopes),
        )
        body = self._view(info)
        if secret is not None:
            body["client_secret"] = secret
        if webhook_secret is not None:
            body["notification_webhook_secret"] = webhook_secret
        return body

    def _view(self, info: ClientInfo) -> dict[str, Any]:
        return client_view(info, self._s.clock.now())

    def _webhook_secret(self, client_id: str, values: dict[str, Any]) -> str | None:
        """A new webhook signing key when ``values`` sets a webhook (added to ``values`` encrypted; returned in
        clear to be shown once); clearing the webhook clears its key."""
        if "notification_webhook" not in values:
            return None
        if values["notification_webhook"] is None:
            values["webhook_secret_encrypted"] = None
            return None
        key = new_webhook_secret()
        values["webhook_secret_encrypted"] = self._s.encryptor.encrypt(key.encode(), aad=webhook_aad(client_id))
        return key

    async def _fresh_client(self, client_id: str) -> ClientInfo:
        self._s.clients.forget(client_id)
        info = await self._s.clients.get(client_id)
        if info is None:
            raise not_found("client")
        return info

    async def get_client(self, client_id: str) -> dict[str, Any]:
        return self._view(await self._fresh_client(client_id))

    async def list_clients(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit, offset = page(params, allowed=set())
        async with self._s.sessions() as session:
            ids = (
                await session.scalars(select(Client.client_id).order_by(Client.created_at, Client.client_id).limit(limit + 1).offset(offset))
            ).all()
        items = []
        for client_id in ids[:limit]:
            info = await self._s.clients.get(client_id)
            if info is not None:
                items.append(self._view(info))
        return listing(items, limit, offset, len(ids) > limit)

    async def _update_client_row(self, client_id: str, values: Mapping[str, Any]) -> None:
        async with self._s.sessions.begin() as session:
            result = await session.execute(
                update(Client).where(Client.client_id == client_id).values(updated_at=self._s.clock.now(), **values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise not_found("client")
        self._s.clients.forget(client_id)

    async def update_client(self, client_id: str, data: Any, *, actor: Actor) -> dict[str, Any]:
        changes = self._read_client(data, creating=False)
        current = await self._fresh_client(client_id)
        merged = {**client_view(current), **changes}
        self._check_client_consistency(merged)
        if "name" in changes and changes["name"] is None:
            raise invalid("The request has invalid fields.", [{"field": "name", "message": "must not be null"}])
        for name in ("grant_types", "redirect_uris", "post_logout_redirect_uris", "scopes", "audience"):
            if name in changes and changes[name] is None:
                changes[name] = []
        for name in (
            "first_party", "require_mfa", "can_introspect", "token_endpoint_auth_method", "dpop_bound_access_tokens",
            "require_pushed_authorization_requests",
        ):
            if name in changes and changes[name] is None:
                raise invalid("The request has invalid fields.", [{"field": name, "message": "must not be null"}])
        if actor.client_id == client_id:
            audience = merged.get("audience") or []
            issuer = self._s.settings.server.issuer
            if (
                self._s.settings.admin.scope not in (merged.get("scopes") or [])
                or "client_credentials" not in (merged.get("grant_types") or [])
                or (audience and issuer not in audience)
            ):
                self._not_self(client_id, actor)
        if changes.get("notification_webhook") and current.is_public:
            raise invalid("The request has invalid fields.", [{"field": "notification_webhook", "message": "public clients have no secret to rotate"}])
        fields = sorted(changes)
        webhook_secret = self._webhook_secret(client_id, changes)
        if changes:
            await self._update_client_row(client_id, changes)
            await self._s.events.record(
                "admin.client_updated", "success", client_id=client_id, actor=actor.describe(), fields=fields,
            )
        body = self._view(await self._fresh_client(client_id))
        if webhook_secret is not None:
            body["notification_webhook_secret"] = webhook_secret
        return body

    @staticmethod
    def _not_self(client_id: str, actor: Actor) -> None:
        """An admin client cannot lock itself out (disable, delete, lose the admin scope) by mistake."""
        if actor.client_id is not None and actor.client_id == client_id:
            raise conflict("A client cannot disable, delete or remove the admin scope from itself; use another admin client.")

    async def set_client_disabled(self, client_id: str, disabled: bool, *, actor: Actor) -> dict[str, Any]:
        if disabled:
            self._not_self(client_id, actor)
        try:
            was_disabled = await self._s.clients.set_disabled(client_id, disabled)
        except NotFound:
            raise not_found("client") from None
        # The deny list carries the decision to introspection and to offline verifiers (the feed):
        # while disabled every token of the client is refused; after enabling, those issued before.
        if disabled:
            await self._s.revocations.deny_client(client_id)
        elif was_disabled is not None:
            await self._s.revocations.deny_client(client_id, not_before=issued_before_reenabling(was_disabled))
        await self._s.events.record(
            "admin.client_disabled" if disabled else "admin.client_enabled", "success", client_id=client_id, actor=actor.describe()
        )
        return self._view(await self._fresh_client(client_id))

    async def delete_client(self, client_id: str, *, actor: Actor) -> None:
        self._not_self(client_id, actor)
        try:
            await self._s.clients.delete(client_id)
        except NotFound:
            raise not_found("client") from None
        # Its outstanding tokens die everywhere, offline verifiers included; a client created again later
        # under the same id is not affected (only tokens issued up to this second are denied).
        await self._s.revocations.deny_client(client_id, not_before=issued_before_reenabling(self._s.clock.now()))
        await self._s.events.record("admin.client_deleted", "success", client_id=client_id, actor=actor.describe())

    async def list_secrets(self, client_id: str) -> dict[str, Any]:
        """Every secret of the client with its label, expiry, state and usage (never a value)."""
        try:
            rows = await self._s.clients.secrets(client_id)
        except NotFound:
            raise not_found("client") from None
        now = self._s.clock.now()
        return {"items": [secret_view(row, now) for row in rows]}

    async def rotate_secret(self, client_id: str, data: Any, *, actor: Actor) -> dict[str, Any]:
        """A new secret, valid at once; the previous ones stay valid for ``grace_seconds`` (0: end now).
        With ``label``: only that label's secrets are replaced (a new label adds a secret beside the others)."""
        _, given = read(Rotation, {} if data is None else data)
        grace = given.get("grace_seconds")
        label = given.get("label")
        if grace is None:
            grace = self._s.settings.admin.secret_rotation_grace
        info = await self._fresh_client(client_id)
        if info.is_public:
            raise AdminError(409, "conflict", "Public clients have no secret.")
        try:
            secret, row = await self._s.clients.add_secret(client_id, label=label, grace_seconds=grace)
        except NotFound:
            raise not_found("client") from None
        expires = self._s.clock.now() + timedelta(seconds=grace)
        await self._s.events.record(
            "admin.client_secret_rotated", "success", client_id=client_id, actor=actor.describe(), grace_seconds=grace,
            label=row.label, secret_id=row.id,
        )
        return {
            "client_id": client_id, "client_secret": secret, "previous_secrets_expire_at": iso(expires), "grace_seconds": grace,
            "id": row.id, "label": row.label, "expires_at": iso(row.expires_at),
        }

    @staticmethod
    def _secret_id(secret_id: str) -> int:
        # ASCII digits only, within the column's 32-bit range (a larger number is no row, not a driver error).
        if not (secret_id.isascii() and secret_id.isdigit()) or len(secret_id) > 10 or int(secret_id) >= 2**31:
            raise not_found("secret")
        return int(secret_id)

    async def revoke_secret(self, client_id: str, secret_id: str, *, actor: Actor) -> dict[str, Any]:
        """End one secret now (a leaked one). An admin client cannot revoke its own secrets (lock-out)."""
        number = self._secret_id(secret_id)
        await self._fresh_client(client_id)
        if actor.client_id is not None and actor.client_id == client_id:
            raise conflict("A client cannot revoke its own secret; use another admin client or the CLI.")
        try:
            row = await self._s.clients.revoke_secret(client_id, number)
        except NotFound:
            raise not_found("secret") from None
        await self._s.events.record(
            "admin.client_secret_revoked", "success", client_id=client_id, actor=actor.describe(), secret_id=number,
            label=row.label,
        )
        return secret_view(row, self._s.clock.now())

    async def reveal_secret(self, client_id: str, secret_id: str, *, actor: Actor) -> dict[str, Any]:
        """Take, once, a secret the rotation job issued and could not deliver; the replaced secret's grace starts."""
        number = self._secret_id(secret_id)
        await self._fresh_client(client_id)
        try:
            result = await SecretRotation(self._s).reveal(client_id, number)
        except DecryptionError:
            raise conflict("The secret cannot be decrypted with the configured encryption keys; rotate it instead.") from None
        if result is None:
            raise not_found("undelivered secret")
        row, secret, ends = result
        await self._s.events.record(
            "admin.client_secret_revealed", "success", client_id=client_id, actor=actor.describe(), secret_id=number,
        )
        return {
            "client_id": client_id, "id": row.id, "label": row.label, "client_secret": secret,
            "expires_at": iso(row.expires_at), "previous_secret_expires_at": iso(ends),
        }

    # -- users ----------------------------------------------------------------------------------------

    async def create_user(self, data: Any, *, actor: Actor) -> dict[str, Any]:
        _, given = read(UserCreate, data, context=self._context())
        username, password = given["username"], given.get("password")
        email, email_verified, name = given.get("email"), given.get("email_verified"), given.get("name")
        locale, roles = given.get("locale"), given.get("roles")
        try:
            password_hash = await self._s.passwords.hash(password) if password is not None else None
        except PasswordPolicyError as error:
            raise invalid("The request has invalid fields.", [{"field": "password", "message": str(error)}]) from None
        if await self._s.accounts.get_by_username(username) is not None:
            raise conflict("This username is taken.")
        try:
            row = await self._s.accounts.create(
                username=username, password_hash=password_hash, email=email, email_verified=bool(email_verified),
                name=name, roles=roles or [], locale=locale,
            )
        except Conflict:
            raise conflict("This username is taken.") from None
        except ValueError as error:
            raise invalid(str(error)) from None
        await self._s.events.record(
            "admin.user_created", "success", account_id=row.account_id, actor=actor.describe(), roles=list(row.roles)
        )
        return account_view(row)

    async def _account(self, account_id: str) -> Account:
        row = await self._s.accounts.get(account_id) if 0 < len(account_id) <= 64 else None
        if row is None:
            raise not_found("user")
        return row

    async def account_id_of(self, username: str) -> str:
        """The account id of a username (the CLI names people by username)."""
        row = await self._s.accounts.get_by_username(username) if 0 < len(username) <= 150 else None
        if row is None:
            raise not_found("user")
        return row.account_id

    async def set_password(self, account_id: str, password: Any, *, actor: Actor) -> dict[str, Any]:
        """Set a person's password (the password policy applies, as at creation)."""
        body = Body({"password": password}, allowed={"password"})
        value = body.string("password", required=True, max_length=1024)
        body.done()
        await self._account(account_id)
        try:
            password_hash = await self._s.passwords.hash(value)
        except PasswordPolicyError as error:
            raise invalid("The request has invalid fields.", [{"field": "password", "message": str(error)}]) from None
        await self._s.accounts.set_password_hash(account_id, password_hash)
        await self._s.events.record("admin.user_password_set", "success", account_id=account_id, actor=actor.describe())
        return account_view(await self._account(account_id))

    async def get_user(self, account_id: str) -> dict[str, Any]:
        return account_view(await self._account(account_id))

    async def list_users(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit, offset = page(params, allowed={"username"})
        query = select(Account).order_by(Account.created_at, Account.account_id)
        if "username" in params:
            query = query.where(Account.username == params["username"].strip().lower()[:150])
        async with self._s.sessions() as session:
            rows = (await session.scalars(query.limit(limit + 1).offset(offset))).all()
        return listing([account_view(r) for r in rows[:limit]], limit, offset, len(rows) > limit)

    async def update_user(self, account_id: str, data: Any, *, actor: Actor) -> dict[str, Any]:
        _, changes = read(UserUpdate, data, context=self._context())
        disabled = changes.pop("disabled", None)
        if changes.get("email_verified", False) is None:
            changes.pop("email_verified")
        await self._account(account_id)
        if changes:
            async with self._s.sessions.begin() as session:
                await session.execute(
                    update(Account).where(Account.account_id == account_id).values(updated_at=self._s.clock.now(), **changes)
                )
            await self._s.events.record(
                "admin.user_updated", "success", account_id=account_id, actor=actor.describe(), fields=sorted(changes),
                **({"roles": changes["roles"]} if "roles" in changes else {}),
            )
        if disabled is not None:
            return await self.set_user_disabled(account_id, disabled, actor=actor)
        return account_view(await self._account(account_id))

    async def set_user_disabled(self, account_id: str, disabled: bool, *, actor: Actor) -> dict[str, Any]:
        """Disable: sign-in refused, sessions ended, every token of the person inactive at once (deny list);
        enable: sign-in allowed again, tokens from before stay inactive (authserver.accounts.lifecycle)."""
        from authserver.accounts import lifecycle

        await self._account(account_id)
        if disabled:
            await lifecycle.disable_account(self._s, account_id, actor=actor.label())
        else:
            await lifecycle.enable_account(self._s, account_id, actor=actor.label())
        await self._s.events.record(
            "admin.user_disabled" if disabled else "admin.user_enabled", "success", account_id=account_id, actor=actor.describe()
        )
        return account_view(await self._account(account_id))

    async def reset_mfa(self, account_id: str, *, actor: Actor) -> dict[str, Any]:
        """Forget the TOTP secret and every backup code: the person enrols again at the next sign-in."""
        from authserver.mfa.service import Context

        await self._account(account_id)
        channel = "cli" if actor.via == "cli" else "admin_api"
        await self._s.mfa.reset(account_id, Context(extra={"channel": channel, "actor": actor.describe()}))
        await self._s.events.record("admin.user_mfa_reset", "success", account_id=account_id, actor=actor.describe())
        return account_view(await self._account(account_id))

    async def unlock_user(self, account_id: str, *, actor: Actor) -> dict[str, Any]:
        row = await self._account(account_id)
        if self.unlock_hook is None:
            raise AdminError(501, "not_implemented", "This build has no brute-force lockout store to unlock.")
        await self.unlock_hook(row)
        await self._s.events.record("admin.user_unlocked", "success", account_id=account_id, actor=actor.describe())
        return account_view(await self._account(account_id))

    async def delete_user(self, account_id: str, *, actor: Actor) -> str:
        """GDPR erasure (authserver.accounts.lifecycle.delete_account): personal data and credentials go, every
        token is revoked at once, and the security log keeps a pseudonym (returned)."""
        from authserver.accounts import lifecycle

        await self._account(account_id)
        await self._s.events.record("admin.user_deleted", "success", account_id=account_id, actor=actor.describe())
        return await lifecycle.delete_account(self._s, account_id, actor=actor.label())

    # -- roles ------------------------------------------------------------------------------------------

    def list_roles(self) -> dict[str, Any]:
        descriptions = {
            "free_user": "CMIPRO free tier",
            "premium_user": "CMIPRO premium tier",
            "admin": "Administrator: may use the admin API from a browser session with MFA",
        }
        return {"items": [{"name": r, "description": descriptions.get(r, "")} for r in self._s.settings.admin.roles]}

    # -- security events ----------------------------------------------------------------------------------

    async def list_events(self, params: Mapping[str, str]) -> dict[str, Any]:
        limit, offset = page(params, allowed={"account_id", "client_id", "event", "outcome", "since", "until"})
        query = select(SecurityEvent)
        problems: list[dict[str, str]] = []
        for name, column in (
            ("account_id", SecurityEvent.account_id), ("client_id", SecurityEvent.client_id),
            ("event", SecurityEvent.event), ("outcome", SecurityEvent.outcome),
        ):
            value = params.get(name)
            if value is None:
                continue
            if not EVENT_NAME.fullmatch(value):
                problems.append({"field": name, "message": "has characters that are not allowed"})
                continue
            query = query.where(column == value)
        if problems:
            raise invalid("The request has invalid parameters.", problems)
        since, until = timestamp(params, "since"), timestamp(params, "until")
        await self._s.events.flush()
        if since is not None:
            query = query.where(SecurityEvent.occurred_at >= since)
        if until is not None:
            query = query.where(SecurityEvent.occurred_at < until)
        async with self._s.sessions() as session:
            rows = (
                await session.scalars(query.order_by(SecurityEvent.occurred_at.desc(), SecurityEvent.id.desc()).limit(limit + 1).offset(offset))
            ).all()
        return listing([event_view(r) for r in rows[:limit]], limit, offset, len(rows) > limit)

    async def count_users(self) -> int:
        async with self._s.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Account)) or 0)
