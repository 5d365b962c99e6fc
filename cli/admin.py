"""Operations commands: API keys, the audit trail and the effective settings."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from cli.common import one_line_errors, print_table
from triage.settings import TriageSettings

app = typer.Typer()
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke, rotate (stored hashed).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@one_line_errors
def keys_create(
    role: Annotated[str, typer.Option(help="scorer, reviewer or admin")],
    name: Annotated[str, typer.Option(help="Who or what holds the key")],
) -> None:
    """Create a key; the secret is printed once and never stored."""
    from cli.keys import create_key

    key_id, secret = create_key(TriageSettings(), role, name)
    typer.echo(f"key {key_id} ({role}, {name}): {secret}")


@keys_app.command("list")
@one_line_errors
def keys_list() -> None:
    """Keys with their role and state (never the secrets)."""
    from cli.keys import list_keys

    keys = [asdict(key) | {"state": "revoked" if key.revoked_at else "active"} for key in list_keys(TriageSettings())]
    print_table(keys, ["key_id", "name", "role", "state", "active_secrets", "created_at", "revoked_at"], "no keys")


@keys_app.command("revoke")
@one_line_errors
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (tk_<id>_...)")]) -> None:
    """Revoke a key; the running service stops accepting it within seconds."""
    from cli.keys import revoke_key

    typer.echo(f"revoked {revoke_key(TriageSettings(), key_id)} secret(s) of {key_id}")


@keys_app.command("rotate")
@one_line_errors
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key id")],
    grace_minutes: Annotated[int, typer.Option(min=0, help="How long the old secret keeps working")] = 0,
) -> None:
    """A new secret for the same key id (the old one valid for the grace period); no restart needed."""
    from datetime import timedelta

    from cli.keys import rotate_key

    typer.echo(rotate_key(TriageSettings(), key_id, timedelta(minutes=grace_minutes)))


@app.command()
@one_line_errors
def audit(
    since_hours: Annotated[float, typer.Option(min=0, help="How far back")] = 24.0,
    actor: Annotated[str | None, typer.Option(help="Key id or cli:<user>")] = None,
    action: Annotated[str | None, typer.Option(help="scored, decided, reloaded, alias_set, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most entries")] = 100,
) -> None:
    """Who scored, decided, reloaded or promoted what, when, with which model version."""
    from datetime import timedelta

    from cli.keys import query_audit

    entries = query_audit(TriageSettings(), since=timedelta(hours=since_hours), actor=actor, action=action,
                          limit=limit)
    print_table([asdict(e) for e in entries], ["at", "actor", "action", "target", "model_version", "detail"],
                "no audit entries")


@app.command()
def entities(
    scored: Annotated[bool, typer.Option("--scored", help="Only the names of the scored entity types, one a line")]
    = False,
) -> None:
    """The entity types of the registry (triage/entities.py): what each is, its files, model and capacity."""
    from triage.entities import ENTITIES

    if scored:
        typer.echo("\n".join(ENTITIES.scored_names()))
        return
    print_table([{"name": s.name, "route": f"/score_{s.plural}" if s.scored else "-", "data": s.data_file,
                  "model": s.model_name, "capacity/day": s.review_capacity_per_day, "handle min": s.handle_minutes,
                  "members": s.members, "links": ", ".join(f"{link.by}->{link.entity}" for link in s.links) or None}
                 for s in ENTITIES],
                ["name", "route", "data", "model", "capacity/day", "handle min", "members", "links"])


@app.command()
def settings() -> None:
    """Print the effective settings (from TRIAGE_* environment variables and defaults)."""
    s = TriageSettings()
    typer.echo(json.dumps(s.model_dump(mode="json") | {"tracking_uri": s.tracking_uri}, indent=2))


if __name__ == "__main__":
    app()
