"""The `authserver` command line: serve, migrate, and provision clients and users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from authserver.settings import Settings, SettingsError, load_settings

DEMO_SERVICE = "demo-service"
DEMO_WEB = "demo-web"
DEMO_USER = "demo"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(path=args.config)


def _print(data: dict[str, Any] | list[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        for key, value in row.items():
            print(f"{key:28} {' '.join(value) if isinstance(value, list) else value}")
        print()


async def _with_services(settings: Settings, action: Any) -> Any:
    from authserver.app import build_services

    services = build_services(settings)
    try:
        return await action(services)
    finally:
        await services.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    from authserver.storage.sql.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database.url, args.revision)
    print(f"database at {args.revision}")
    return 0


def _server_options(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """``--host``/``--port``/``--workers`` as the environment settings they stand for, so the issuer derived
    from them (no ``server.issuer`` configured: http://host:port) is the same for ``serve`` and the other commands."""
    if args.config:
        os.environ["AUTHSERVER_CONFIG"] = os.path.abspath(args.config)
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"AUTHSERVER_SERVER__{name.upper()}"] = str(value)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _server_options(args, ("host", "port", "workers"))
    settings = load_settings()
    from authserver.logging import configure_logging, uvicorn_log_config
    from authserver.tls import uvicorn_tls_options

    configure_logging(settings.observability.log_format, settings.observability.log_level)
    from authserver.metrics import ensure_multiprocess_dir, prepare_multiprocess_dir

    ensure_multiprocess_dir(settings.server.workers)
    prepare_multiprocess_dir()
    if settings.database.migrate_on_start:
        from authserver.storage.sql.migrate import upgrade

        upgrade(settings.database.url)
    if settings.server.demo and not settings.server.production:
        asyncio.run(_with_services(settings, _ensure_demo))
    print(f"authserver listening on {settings.server.issuer} (discovery: {settings.server.issuer}/.well-known/openid-configuration)", flush=True)
    uvicorn.run(
        "authserver.cli:app_from_environment",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.observability.graceful_timeout,
        log_level=settings.observability.log_level.lower(),
        log_config=uvicorn_log_config(),
        **uvicorn_tls_options(settings.server),
    )
    return 0


def app_from_environment() -> Any:
    from authserver.app import create_app
    from authserver.logging import configure_logging

    settings = load_settings()
    # Each uvicorn worker is its own process: configure its logging too.
    configure_logging(settings.observability.log_format, settings.observability.log_level)
    return create_app(settings, server_process=True)


async def _ensure_demo(services: Any) -> None:
    """First start of the embedded default: a service client, a web client and a user, printed once."""
    await services.keys.ensure_active_keys()
    issuer = services.settings.server.issuer
    if await services.clients.get(DEMO_SERVICE) is not None:
        print(f"demo clients exist ({DEMO_SERVICE}, {DEMO_WEB}); `authserver client rotate-secret {DEMO_SERVICE}` prints a new secret")
        return
    from authserver.admin.service import CLI, AdminService

    admin = AdminService(services)
    scopes = list(services.settings.tokens.scopes)
    created = await admin.create_client({
        "client_id": DEMO_SERVICE, "name": "Demo service", "client_type": "confidential", "grant_types": ["client_credentials"],
        "scopes": [s for s in scopes if s not in {"openid", "profile", "email", "offline_access", services.settings.admin.scope}],
        "audience": ["https://api.cmipro.example"],
    }, actor=CLI)
    secret = created["client_secret"]
    await admin.create_client({
        "client_id": DEMO_WEB, "name": "Demo web app", "client_type": "public",
        "redirect_uris": ["http://127.0.0.1:8080/callback", "http://localhost:8080/callback"],
        "grant_types": ["authorization_code", "refresh_token"], "scopes": [s for s in scopes if s != services.settings.admin.scope],
        "first_party": False, "audience": ["https://api.cmipro.example"],
    }, actor=CLI)
    password = secrets.token_urlsafe(12)
    if await services.accounts.get_by_username(DEMO_USER) is None:
        await admin.create_user({
            "username": DEMO_USER, "password": password, "email": "demo@cmipro.example", "email_verified": True,
            "name": "Demo User", "roles": ["free_user"],
        }, actor=CLI)
    print(
        "\n=== demo set-up (shown once) ===\n"
        f"service client   client_id={DEMO_SERVICE} client_secret={secret}\n"
        f"  curl -s -u {DEMO_SERVICE}:{secret} -d grant_type=client_credentials {issuer}/token\n"
        f"web client       client_id={DEMO_WEB} (public, PKCE) redirect_uri=http://127.0.0.1:8080/callback\n"
        f"user             username={DEMO_USER} password={password}\n"
        "================================\n",
        flush=True,
    )


def cmd_client_create(args: argparse.Namespace) -> int:
    """Through ``AdminService.create_client``: the admin API's validation and event, nothing written directly.
    The key metadata (--jwks-file ...) and the RFC 8705 options are read first, for the options' own messages."""
    from authserver.admin.service import CLI

    key_values = _client_key_metadata(args)
    mtls = _mtls_options(args, jwks=key_values.get("jwks"))
    options = {
        "client_id": args.client_id, "name": args.name, "client_type": args.type, "redirect_uris": args.redirect_uri,
        "grant_types": args.grant or [], "scopes": args.scope, "audience": args.audience,
        "post_logout_redirect_uris": args.post_logout_redirect_uri, "token_endpoint_auth_method": args.auth_method,
        "first_party": args.first_party or None, "require_mfa": args.require_mfa or None,
        "can_introspect": args.can_introspect or None, "signing_alg": args.signing_alg, "access_token_ttl": args.access_token_ttl,
        "dpop_bound_access_tokens": args.dpop_bound_access_tokens or None,
        **mtls, **key_values,
    }
    body = {k: v for k, v in options.items() if v is not None}
    result = _admin_call(args, lambda admin: admin.create_client(body, actor=CLI), body=body, failure="client not created")
    _print(result, args.json)
    if "client_secret" in result and not args.json:
        print("The client secret is shown only now; store it safely.", file=sys.stderr)
    return 0


def _mtls_options(args: argparse.Namespace, *, jwks: Any) -> dict[str, Any]:
    """RFC 8705 metadata of ``client create``, checked as the admin API checks it (certificates.check_metadata;
    ``jwks`` is the --jwks-file key set, read with the other key metadata)."""
    from authserver.protocol.certificates import check_metadata

    values: dict[str, Any] = {
        "tls_client_auth_subject_dn": args.tls_subject_dn, "tls_client_auth_san_dns": args.tls_san_dns,
        "tls_client_auth_san_uri": args.tls_san_uri, "tls_client_auth_san_ip": args.tls_san_ip,
        "tls_client_auth_san_email": args.tls_san_email,
        "tls_client_certificate_bound_access_tokens": args.certificate_bound_tokens,
    }
    problems = check_metadata({**values, "jwks": jwks, "token_endpoint_auth_method": args.auth_method})
    if problems:
        raise SystemExit("client not created: " + "; ".join(f"{field}: {message}" for field, message in problems))
    return {name: value for name, value in values.items() if value is not None}


def _client_key_metadata(args: argparse.Namespace) -> dict[str, Any]:
    """--jwks-file / --jwks-uri / --token-endpoint-auth-signing-alg / --require-par, checked as the admin API does."""
    from authserver.admin.client_keys import key_consistency_problems, read_key_metadata

    data: dict[str, Any] = {"require_pushed_authorization_requests": bool(args.require_par)}
    if args.jwks_file:
        try:
            data["jwks"] = json.loads(Path(args.jwks_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SystemExit(f"--jwks-file: cannot read a JSON JWK Set: {error}") from None
    if args.jwks_uri:
        data["jwks_uri"] = args.jwks_uri
    if args.token_endpoint_auth_signing_alg:
        data["token_endpoint_auth_signing_alg"] = args.token_endpoint_auth_signing_alg
    method = args.auth_method or ("none" if args.type == "public" else "client_secret_basic")
    values, problems = read_key_metadata(data, https_only=_settings(args).server.production)
    problems += key_consistency_problems({**values, "token_endpoint_auth_method": method})
    if problems:
        raise SystemExit("client not created: " + "; ".join(f"{p['field']} {p['message']}" for p in problems))
    return values


def cmd_client_list(args: argparse.Namespace) -> int:
    async def action(services: Any) -> list[dict[str, Any]]:
        return [c.public_dict() for c in await services.clients.list()]

    _print(asyncio.run(_with_services(_settings(args), action)), args.json)
    return 0


def cmd_client_rotate_secret(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    body = {} if args.grace is None else {"grace_seconds": args.grace}
    result = _admin_call(args, lambda admin: admin.rotate_secret(args.client_id, body, actor=CLI))
    _print(result, args.json)
    return 0


def cmd_client_secret(args: argparse.Namespace) -> int:
    """``client secret list|add|revoke|reveal``: named secrets, their expiry and usage."""
    from authserver.admin.service import CLI

    command = args.secret_command
    if command == "list":
        result = _admin_call(args, lambda admin: admin.list_secrets(args.client_id))
        _print(result["items"], args.json)
        return 0
    if command == "add":
        body: dict[str, Any] = {"label": args.label}
        if args.grace is not None:
            body["grace_seconds"] = args.grace
        result = _admin_call(args, lambda admin: admin.rotate_secret(args.client_id, body, actor=CLI))
    elif command == "revoke":
        result = _admin_call(args, lambda admin: admin.revoke_secret(args.client_id, args.secret_id, actor=CLI))
    else:
        result = _admin_call(args, lambda admin: admin.reveal_secret(args.client_id, args.secret_id, actor=CLI))
    _print(result, args.json)
    if "client_secret" in result and not args.json:
        print("The client secret is shown only now; store it safely.", file=sys.stderr)
    return 0


def _admin_call(args: argparse.Namespace, call: Any, *, body: dict[str, Any] | None = None, failure: str = "") -> Any:
    """Run ``call(admin_service)`` with CLI credentials; admin errors end the command with their message,
    each refused field named (with the value given, for an item of a list option)."""
    from authserver.admin.service import AdminService
    from authserver.admin.validation import AdminError

    async def action(services: Any) -> Any:
        return await call(AdminService(services))

    try:
        return asyncio.run(_with_services(_settings(args), action))
    except AdminError as error:
        problems = "; ".join(f"{e['field']}{_given(body, e['field'])}: {e['message']}" for e in error.errors)
        prefix = f"{failure}: " if failure else ""
        raise SystemExit(f"{prefix}{error.message}{' ' + problems if problems else ''}") from None


def _given(body: dict[str, Any] | None, field: str) -> str:
    name, _, index = field.partition("[")
    value = (body or {}).get(name)
    if index and isinstance(value, list) and index[:-1].isdigit() and int(index[:-1]) < len(value):
        return f" {value[int(index[:-1])]!r}"
    return ""


def cmd_client_update(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    changes: dict[str, Any] = {}
    for name in ("name", "redirect_uri", "post_logout_redirect_uri", "grant", "scope", "audience", "signing_alg", "access_token_ttl"):
        value = getattr(args, name)
        if value is not None:
            key = {"redirect_uri": "redirect_uris", "post_logout_redirect_uri": "post_logout_redirect_uris",
                   "grant": "grant_types", "scope": "scopes"}.get(name, name)
            changes[key] = value
    for name in ("first_party", "require_mfa", "can_introspect", "dpop_bound_access_tokens"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value == "yes"
    for name in ("owner_email", "notification_webhook"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value or None  # "" clears it
    result = _admin_call(args, lambda admin: admin.update_client(args.client_id, changes, actor=CLI))
    _print(result, args.json)
    if "notification_webhook_secret" in result and not args.json:
        print("The webhook signing key is shown only now; give it to the webhook's receiver.", file=sys.stderr)
    return 0


def cmd_client_disable(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    disabled = args.client_command == "disable"
    _print(_admin_call(args, lambda admin: admin.set_client_disabled(args.client_id, disabled, actor=CLI)), args.json)
    return 0


def cmd_client_delete(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    if not args.yes:
        raise SystemExit("deleting a client removes its grants and tokens; repeat with --yes")
    _admin_call(args, lambda admin: admin.delete_client(args.client_id, actor=CLI))
    print(f"client {args.client_id} deleted")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit), "offset": str(args.offset)}
    if args.username:
        params["username"] = args.username
    result = _admin_call(args, lambda admin: admin.list_users(params))
    _print(result["items"], args.json)
    return 0


def cmd_user_set_roles(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    async def call(admin: Any) -> Any:
        return await admin.update_user(await admin.account_id_of(args.username), {"roles": args.role or []}, actor=CLI)

    _print(_admin_call(args, call), args.json)
    return 0


def cmd_role_list(args: argparse.Namespace) -> int:
    roles = _settings(args).admin.roles
    print(json.dumps(roles) if args.json else "\n".join(roles))
    return 0


def cmd_registration_token(args: argparse.Namespace) -> int:
    from authserver.admin.registration import issue_initial_access_token

    async def action(services: Any) -> str:
        await services.keys.ensure_active_keys()
        return issue_initial_access_token(services, ttl=args.ttl)

    _server_options(args, ("host", "port"))
    settings = load_settings()
    token = asyncio.run(_with_services(settings, action))
    print(token)
    print(f"Initial access token for POST /register at {settings.server.issuer}, valid {args.ttl} s.", file=sys.stderr)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise SystemExit("passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace) -> int:
    """Through ``AdminService.create_user``: the admin API's validation (username, e-mail, roles, password policy)."""
    from authserver.admin.service import CLI

    password = _read_password(args)
    options = {
        "username": args.username, "password": password, "email": args.email, "email_verified": args.email_verified or None,
        "name": args.name, "roles": args.role,
    }
    body = {k: v for k, v in options.items() if v is not None}
    shown = {k: v for k, v in body.items() if k != "password"}
    _print(_admin_call(args, lambda admin: admin.create_user(body, actor=CLI), body=shown, failure="user not created"), args.json)
    return 0


def cmd_user_set_password(args: argparse.Namespace) -> int:
    from authserver.admin.service import CLI

    password = _read_password(args)

    async def call(admin: Any) -> Any:
        return await admin.set_password(await admin.account_id_of(args.username), password, actor=CLI)

    _admin_call(args, call)
    print("password changed")
    return 0


def cmd_user_lifecycle(args: argparse.Namespace) -> int:
    """disable | enable | delete through ``AdminService``: take effect on every instance at once (docs/token-lifecycle.md)."""
    from authserver.admin.service import CLI

    if args.user_command == "delete" and not args.yes:
        raise SystemExit("deleting a user erases their data for good; repeat with --yes")

    async def call(admin: Any) -> dict[str, Any]:
        account_id = await admin.account_id_of(args.username)
        if args.user_command == "delete":
            pseudonym = await admin.delete_user(account_id, actor=CLI)
            return {"deleted": args.username, "security_log_pseudonym": pseudonym}
        view = await admin.set_user_disabled(account_id, args.user_command == "disable", actor=CLI)
        return {"account_id": view["account_id"], "username": view["username"], "disabled": view["disabled"]}

    _print(_admin_call(args, call), args.json)
    return 0


def cmd_user_unlock(args: argparse.Namespace) -> int:
    from authserver.abuse import unlock

    async def action(services: Any) -> bool:
        account = await services.accounts.get_by_username(args.username)
        return await unlock(
            services.lockout, services.events, username=args.username, ip=args.ip, by=f"cli:{getpass.getuser()}",
            account_id=account.account_id if account else None,
        )

    cleared = asyncio.run(_with_services(_settings(args), action))
    print("unlocked" if cleared else "was not locked")
    return 0


def cmd_invitation(args: argparse.Namespace) -> int:
    """Invitation codes for sign-up: create (the code is printed once), list, revoke."""
    from authserver.admin import invitations
    from authserver.admin.service import CLI
    from authserver.admin.validation import AdminError

    async def action(services: Any) -> Any:
        if args.invitation_command == "create":
            body: dict[str, Any] = {"max_uses": args.uses}
            if args.ttl is not None:
                body["ttl_seconds"] = args.ttl
            if args.note:
                body["note"] = args.note
            return await invitations.create_invitation(services, body, actor=CLI)
        if args.invitation_command == "revoke":
            return await invitations.revoke_invitation(services, args.invitation_id, actor=CLI)
        return (await invitations.list_invitations(services, {"limit": str(args.limit)}))["items"]

    try:
        result = asyncio.run(_with_services(_settings(args), action))
    except AdminError as error:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in error.errors)
        raise SystemExit(f"{error.message}{' ' + problems if problems else ''}") from None
    _print(result, args.json)
    return 0


def cmd_emergency(args: argparse.Namespace) -> int:
    async def action(services: Any) -> dict[str, Any]:
        emergency = services.limiter.emergency
        if args.state in ("on", "off"):
            await emergency.set(args.state == "on", by=f"cli:{getpass.getuser()}", reason=args.reason, duration=args.duration)
        state: dict[str, Any] = await emergency.status()
        state.pop("expired", None)
        return state

    _print(asyncio.run(_with_services(_settings(args), action)), args.json)
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    """Staging fault injection (authserver/chaos.py): the same switch as /admin/api/chaos; refused in production."""
    from authserver.admin import operations
    from authserver.admin.service import CLI
    from authserver.admin.validation import AdminError

    async def action(services: Any) -> dict[str, Any]:
        if args.chaos_command == "start":
            fields = {"experiment": args.experiment, "target": args.target, "min_ms": args.min_ms, "max_ms": args.max_ms,
                      "rate": args.rate, "duration_seconds": args.duration}
            body = {k: v for k, v in fields.items() if v is not None}
            return await operations.start_chaos(services, body, actor=CLI)
        if args.chaos_command == "stop":
            return await operations.stop_chaos(services, {"experiment": args.experiment} if args.experiment else {}, actor=CLI)
        return await operations.chaos_status(services)

    try:
        state = asyncio.run(_with_services(_settings(args), action))
    except AdminError as error:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in error.errors)
        raise SystemExit(f"{error.message}{' ' + problems if problems else ''}") from None
    if args.json:
        _print(state, True)
    else:
        for e in state["experiments"]:
            print(f"{e['experiment']:16} {e['target']:9} until {e['until']}  min_ms={e['min_ms']} max_ms={e['max_ms']} rate={e['rate']}")
        if not state["experiments"]:
            print("no experiment running")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def action(services: Any) -> list[dict[str, Any]]:
        keys = await services.key_manager.list_keys()
        return [k.as_dict() for k in keys if args.all or k.state != "revoked"]

    _print(asyncio.run(_with_services(_settings(args), action)), args.json)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from authserver.housekeeping import purge_once

    async def action(services: Any) -> dict[str, Any]:
        return (await purge_once(services)).as_dict()

    _print(asyncio.run(_with_services(_settings(args), action)), args.json)
    return 0


def cmd_user_reset_mfa(args: argparse.Namespace) -> int:
    """For a person who lost both the phone and the backup codes, after checking who they are out of band."""
    from authserver.admin.service import CLI

    async def call(admin: Any) -> Any:
        return await admin.reset_mfa(await admin.account_id_of(args.username), actor=CLI)

    _admin_call(args, call)
    print("second factor removed; the user signs in with the password (and enrols again if required)")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from authserver.keys.rotation import RotationNotReady

    async def action(services: Any) -> list[str]:
        await services.keys.ensure_active_keys()
        activated: list[str] = await services.key_manager.rotate_now(args.alg, force=args.force)
        return activated

    settings = _settings(args)
    try:
        activated = asyncio.run(_with_services(settings, action))
    except RotationNotReady as error:
        print(f"not rotated: {error}. Wait, or pass --force (verifiers holding a cached JWKS then see an unknown kid until they refetch).", file=sys.stderr)
        return 1
    _print({"activated": activated, "picked_up_by_every_instance_within_seconds": settings.keys.reload_interval}, args.json)
    if not activated:
        print(f"nothing activated: no successor was published yet; one is now. Rotate again in keys.publish_ahead ({settings.keys.publish_ahead} s).", file=sys.stderr)
        return 1
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from authserver.keys.rotation import KeyNotFound

    async def action(services: Any) -> list[str]:
        promoted: list[str] = await services.key_manager.revoke(args.kid)
        return promoted

    settings = _settings(args)
    try:
        promoted = asyncio.run(_with_services(settings, action))
    except KeyNotFound:
        print(f"no signing key {args.kid}", file=sys.stderr)
        return 1
    _print(
        {
            "revoked": args.kid,
            "now_signing": promoted,
            "picked_up_by_every_instance_within_seconds": settings.keys.reload_interval,
            "verifiers_drop_it_within_seconds": settings.tokens.jwks_max_age,
        },
        args.json,
    )
    return 0


def cmd_keys_reencrypt(args: argparse.Namespace) -> int:
    async def action(services: Any) -> dict[str, int]:
        counts: dict[str, int] = await services.key_manager.reencrypt()
        return counts

    counts = asyncio.run(_with_services(_settings(args), action))
    _print(counts, args.json)
    return 1 if counts["failed"] else 0


def _since(text: str) -> Any:
    """An ISO 8601 time, or a duration back from now: 30m, 2h, 7d."""
    from datetime import datetime, timedelta, timezone

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("use an ISO 8601 time or 30m, 2h, 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def cmd_events(args: argparse.Namespace) -> int:
    async def action(services: Any) -> list[dict[str, Any]]:
        account_id = None
        if args.user:
            account = await services.accounts.get_by_username(args.user)
            account_id = account.account_id if account else args.user
        rows: list[dict[str, Any]] = await services.events.query(
            account_id=account_id, client_id=args.client, event=args.event, outcome=args.outcome, ip=args.ip,
            since=args.since, limit=args.limit,
        )
        return rows

    rows = asyncio.run(_with_services(_settings(args), action))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            details = " ".join(f"{k}={v}" for k, v in row["details"].items())
            print(f"{row['time']} {row['event']:<12} {row['outcome']:<9} client={row['client_id'] or '-'} "
                  f"account={row['account_id'] or '-'} ip={row['ip'] or '-'} req={row['request_id'] or '-'} {details}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authserver", description="OAuth 2.0 / OpenID Connect authorization server")
    parser.add_argument("--config", help="TOML settings file (default: $AUTHSERVER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (migrates, creates keys, prints a demo client on first start)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)

    client = commands.add_parser("client", help="manage clients").add_subparsers(dest="client_command", required=True)
    create = client.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--type", choices=["confidential", "public"], required=True)
    create.add_argument("--client-id", help="default: random")
    create.add_argument("--grant", action="append", choices=["authorization_code", "refresh_token", "client_credentials"])
    create.add_argument("--redirect-uri", action="append")
    create.add_argument("--post-logout-redirect-uri", action="append")
    create.add_argument("--scope", action="append")
    create.add_argument("--audience", action="append")
    create.add_argument(
        "--auth-method",
        choices=[
            "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth",
            "self_signed_tls_client_auth", "none",
        ],
    )
    # RFC 8705: tls_client_auth names the certificate by exactly one of these; self_signed_tls_client_auth
    # registers the certificate's public key as a JWK Set (--jwks-file).
    create.add_argument("--tls-subject-dn", help="tls_client_auth: subject DN (RFC 4514), e.g. CN=gauges,O=CMIPRO,C=HN")
    create.add_argument("--tls-san-dns", help="tls_client_auth: a dNSName SAN of the certificate")
    create.add_argument("--tls-san-uri", help="tls_client_auth: a URI SAN")
    create.add_argument("--tls-san-ip", help="tls_client_auth: an iPAddress SAN")
    create.add_argument("--tls-san-email", help="tls_client_auth: an rfc822Name SAN")
    create.add_argument("--certificate-bound-tokens", action="store_true",
                        help="bind access tokens to the client's TLS certificate (cnf.x5t#S256)")
    create.add_argument(
        "--jwks-file",
        help="private_key_jwt or self_signed_tls_client_auth: a file with the client's public JWK Set (JSON)",
    )
    create.add_argument("--jwks-uri", help="private_key_jwt: https URL of the client's JWK Set (not with --jwks-file)")
    create.add_argument("--token-endpoint-auth-signing-alg", help="the one JWS algorithm the client's assertions may use")
    create.add_argument("--require-par", action="store_true", help="authorization requests must come through /par (RFC 9126)")
    create.add_argument("--first-party", action="store_true", help="skip the consent page")
    create.add_argument("--require-mfa", action="store_true")
    create.add_argument("--can-introspect", action="store_true")
    create.add_argument("--dpop-bound-access-tokens", action="store_true", help="require a DPoP proof at every token request (RFC 9449)")
    create.add_argument("--signing-alg", choices=["ES256", "RS256", "EdDSA"])
    create.add_argument("--access-token-ttl", type=int)
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_client_create)
    listing = client.add_parser("list", help="list clients")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_client_list)
    rotate = client.add_parser("rotate-secret", help="issue a new secret; the old one works for --grace seconds")
    rotate.add_argument("client_id")
    rotate.add_argument("--grace", type=int, help="seconds the old secrets keep working (default admin.secret_rotation_grace, 24 h; 0: stop now)")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_client_rotate_secret)
    cupdate = client.add_parser("update", help="change a client's settings (only the options given)")
    cupdate.add_argument("client_id")
    cupdate.add_argument("--name")
    cupdate.add_argument("--grant", action="append", choices=["authorization_code", "refresh_token", "client_credentials"])
    cupdate.add_argument("--redirect-uri", action="append", help="replaces the list; repeat for several")
    cupdate.add_argument("--post-logout-redirect-uri", action="append")
    cupdate.add_argument("--scope", action="append", help="replaces the list; repeat for several")
    cupdate.add_argument("--audience", action="append")
    cupdate.add_argument("--first-party", choices=["yes", "no"])
    cupdate.add_argument("--require-mfa", choices=["yes", "no"])
    cupdate.add_argument("--can-introspect", choices=["yes", "no"])
    cupdate.add_argument("--dpop-bound-access-tokens", choices=["yes", "no"])
    cupdate.add_argument("--signing-alg", choices=["ES256", "RS256", "EdDSA"])
    cupdate.add_argument("--access-token-ttl", type=int)
    cupdate.add_argument("--owner-email", help="told when a secret rotates by itself (never sent the secret); '' clears")
    cupdate.add_argument(
        "--notification-webhook", help="https URL that receives a rotated secret in a signed POST (prints its signing key once); '' clears",
    )
    cupdate.add_argument("--json", action="store_true")
    cupdate.set_defaults(func=cmd_client_update)
    for name, text in (("disable", "refuse the client's token requests"), ("enable", "allow a disabled client again")):
        toggle = client.add_parser(name, help=text)
        toggle.add_argument("client_id")
        toggle.add_argument("--json", action="store_true")
        toggle.set_defaults(func=cmd_client_disable)
    secret = client.add_parser("secret", help="a client's named secrets: expiry, usage, add, revoke").add_subparsers(
        dest="secret_command", required=True
    )
    slist = secret.add_parser("list", help="every secret with its label, expiry, state and usage (never the values)")
    slist.add_argument("client_id")
    slist.add_argument("--json", action="store_true")
    sadd = secret.add_parser("add", help="issue a secret under --label; that label's current secrets work for --grace seconds")
    sadd.add_argument("client_id")
    sadd.add_argument("--label", required=True, help="1-64 characters of A-Z a-z 0-9 . _ ~ -")
    sadd.add_argument("--grace", type=int, help="seconds the label's previous secrets keep working (default admin.secret_rotation_grace)")
    sadd.add_argument("--json", action="store_true")
    srevoke = secret.add_parser("revoke", help="end one secret now")
    srevoke.add_argument("client_id")
    srevoke.add_argument("secret_id")
    srevoke.add_argument("--json", action="store_true")
    sreveal = secret.add_parser("reveal", help="print, once, a secret the rotation job issued and did not deliver")
    sreveal.add_argument("client_id")
    sreveal.add_argument("secret_id")
    sreveal.add_argument("--json", action="store_true")
    for sub in (slist, sadd, srevoke, sreveal):
        sub.set_defaults(func=cmd_client_secret)
    cdelete = client.add_parser("delete", help="delete a client with its grants and tokens")
    cdelete.add_argument("client_id")
    cdelete.add_argument("--yes", action="store_true", help="confirm")
    cdelete.set_defaults(func=cmd_client_delete)

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    ucreate = user.add_parser("create", help="create a user (password from a prompt or --password-stdin)")
    ucreate.add_argument("username")
    ucreate.add_argument("--email")
    ucreate.add_argument("--email-verified", action="store_true")
    ucreate.add_argument("--name")
    ucreate.add_argument("--role", action="append", help="free_user, premium_user, admin")
    ucreate.add_argument("--password-stdin", action="store_true")
    ucreate.add_argument("--json", action="store_true")
    ucreate.set_defaults(func=cmd_user_create)
    setpw = user.add_parser("set-password", help="set a user's password")
    setpw.add_argument("username")
    setpw.add_argument("--password-stdin", action="store_true")
    setpw.set_defaults(func=cmd_user_set_password)
    for name, text in (
        ("disable", "block sign-in and make every token of the user inactive at once"),
        ("enable", "allow sign-in again (tokens from before stay inactive)"),
        ("delete", "erase the user (GDPR): personal data, credentials, sessions and tokens"),
    ):
        sub = user.add_parser(name, help=text)
        sub.add_argument("username")
        if name == "delete":
            sub.add_argument("--yes", action="store_true", help="confirm the erasure")
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=cmd_user_lifecycle)

    purge = commands.add_parser("purge", help="delete expired codes, tokens, sessions and deny-list entries")
    purge.add_argument("--json", action="store_true")
    purge.set_defaults(func=cmd_purge)
    resetmfa = user.add_parser("reset-mfa", help="remove a user's TOTP and backup codes and lift the MFA lock")
    resetmfa.add_argument("username")
    resetmfa.set_defaults(func=cmd_user_reset_mfa)

    keys = commands.add_parser("keys", help="signing keys and the key-encryption key").add_subparsers(dest="keys_command", required=True)
    klist = keys.add_parser("list", help="signing keys with their state and dates")
    klist.add_argument("--all", action="store_true", help="include revoked keys")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=cmd_keys_list)
    krotate = keys.add_parser("rotate", help="activate the published next key now (all algorithms unless --alg)")
    krotate.add_argument("--alg", choices=["ES256", "RS256", "EdDSA"])
    krotate.add_argument("--force", action="store_true", help="even if the next key was published less than keys.publish_ahead ago")
    krotate.add_argument("--json", action="store_true")
    krotate.set_defaults(func=cmd_keys_rotate)
    krevoke = keys.add_parser("revoke", help="emergency: remove a compromised key from the JWKS now; its tokens fail")
    krevoke.add_argument("kid")
    krevoke.add_argument("--json", action="store_true")
    krevoke.set_defaults(func=cmd_keys_revoke)
    kreenc = keys.add_parser("reencrypt", help="re-encrypt private keys and TOTP secrets with security.active_encryption_key")
    kreenc.add_argument("--json", action="store_true")
    kreenc.set_defaults(func=cmd_keys_reencrypt)
    unlock = user.add_parser("unlock", help="lift a brute-force lock on a username (and optionally an IP)")
    unlock.add_argument("username")
    unlock.add_argument("--ip", help="also lift the sign-in block of this IP address")
    unlock.set_defaults(func=cmd_user_unlock)

    invitation = commands.add_parser("invitation", help="invitation codes for sign-up (self_service.signup_requires_invitation)")
    invitation_commands = invitation.add_subparsers(dest="invitation_command", required=True)
    icreate = invitation_commands.add_parser("create", help="make an invitation code; prints it once")
    icreate.add_argument("--uses", type=int, default=1, help="how many sign-ups it allows (default 1)")
    icreate.add_argument("--ttl", type=int, help="seconds it is valid (default self_service.invitation_ttl, 7 days)")
    icreate.add_argument("--note", help="who it is for (shown in listings)")
    ilist = invitation_commands.add_parser("list", help="invitations, newest first (never the codes)")
    ilist.add_argument("--limit", type=int, default=50)
    irevoke = invitation_commands.add_parser("revoke", help="stop an invitation code from working")
    irevoke.add_argument("invitation_id")
    for sub in (icreate, ilist, irevoke):
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=cmd_invitation)

    emergency = commands.add_parser("emergency", help="emergency mode: tighter limits for anonymous and sign-in traffic")
    emergency.add_argument("state", choices=["on", "off", "status"])
    emergency.add_argument("--reason")
    emergency.add_argument("--duration", type=int, help="seconds it stays on (default abuse.emergency_duration, 1 h)")
    emergency.add_argument("--json", action="store_true")
    emergency.set_defaults(func=cmd_emergency)

    chaos = commands.add_parser("chaos", help="staging fault injection experiments (refused in production)")
    chaos_commands = chaos.add_subparsers(dest="chaos_command", required=True)
    cstart = chaos_commands.add_parser("start", help="start (or replace) an experiment on every instance")
    cstart.add_argument("experiment", choices=["latency", "error_rate", "dependency_down", "edge_5xx"])
    cstart.add_argument("--target", choices=["database", "cache"], help="not for edge_5xx")
    cstart.add_argument("--min-ms", type=int, help="latency: shortest delay")
    cstart.add_argument("--max-ms", type=int, help="latency: longest delay")
    cstart.add_argument("--rate", type=float, help="error_rate, edge_5xx: share of calls or requests (0-1]")
    cstart.add_argument("--duration", type=int, help="seconds it runs (default 300, at most 3600)")
    cstop = chaos_commands.add_parser("stop", help="stop one experiment (--experiment) or all")
    cstop.add_argument("--experiment")
    cstatus = chaos_commands.add_parser("status", help="the running experiments")
    for sub in (cstart, cstop, cstatus):
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=cmd_chaos)

    events = commands.add_parser("events", help="query the security event log (newest first)")
    events.add_argument("--user", help="username or account id")
    events.add_argument("--client", help="client id")
    events.add_argument("--event", help="e.g. login, lockout, ratelimit, client_auth, token, emergency")
    events.add_argument("--outcome")
    events.add_argument("--ip")
    events.add_argument("--since", type=_since, help="ISO 8601 time or 30m, 2h, 7d")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)
    ulist = user.add_parser("list", help="list users")
    ulist.add_argument("--limit", type=int, default=50)
    ulist.add_argument("--offset", type=int, default=0)
    ulist.add_argument("--username", help="only this user")
    ulist.add_argument("--json", action="store_true")
    ulist.set_defaults(func=cmd_user_list)
    uroles = user.add_parser("set-roles", help="replace a user's roles (none given: no roles)")
    uroles.add_argument("username")
    uroles.add_argument("--role", action="append", help="free_user, premium_user, admin; repeat for several")
    uroles.add_argument("--json", action="store_true")
    uroles.set_defaults(func=cmd_user_set_roles)

    role = commands.add_parser("role", help="roles users may hold").add_subparsers(dest="role_command", required=True)
    rlist = role.add_parser("list", help="list the configured roles (admin.roles)")
    rlist.add_argument("--json", action="store_true")
    rlist.set_defaults(func=cmd_role_list)

    registration = commands.add_parser("registration", help="dynamic client registration (RFC 7591)")
    reg = registration.add_subparsers(dest="registration_command", required=True)
    issue = reg.add_parser("issue-token", help="print an initial access token for POST /register")
    issue.add_argument("--ttl", type=int, default=24 * 3600, help="seconds the token is valid (default 24 h)")
    issue.add_argument("--host", help="as given to `serve --host` (the issuer, when not configured, is http://host:port)")
    issue.add_argument("--port", type=int, help="as given to `serve --port`")
    issue.set_defaults(func=cmd_registration_token)
    return parser


def _kid_is_not_an_option(argv: list[str]) -> list[str]:
    """A kid (base64url thumbprint) may start with "-": keep argparse from reading it as an option."""
    for i in range(len(argv) - 1):
        if argv[i] == "keys" and argv[i + 1] == "revoke":
            for j in range(i + 2, len(argv)):
                if argv[j] == "--":
                    break
                if argv[j].startswith("-") and argv[j] not in {"--json", "-h", "--help"}:
                    return [*argv[:j], *argv[j + 1:], "--", argv[j]]
            break
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_kid_is_not_an_option(list(sys.argv[1:] if argv is None else argv)))
    try:
        result: int = args.func(args)
        return result
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as error:
        # No traceback for an unreachable or unmigrated database: say what failed and what to try.
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"database error: {reason}\n(is the database reachable, and migrated with `authserver migrate`?)", file=sys.stderr)
        return 1
