"""Events for the marketplace (`triage events`): what waits in the transactional outbox for each subscriber,
delivering it from the command line, and the dead letters (docs/events.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import UserError, one_line_errors, print_table
from triage.settings import TriageSettings

if TYPE_CHECKING:
    from delivery.config import DeliveryConfig
    from stores.outbox import Outbox

app = typer.Typer()
events_app = typer.Typer(no_args_is_help=True, help="The outbox's events: status, dispatch, dead letters, purge.")
app.add_typer(events_app, name="events")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Delivery config JSON (default: "
                                                   "TRIAGE_DELIVERY_CONFIG)")]


def _outbox(settings: TriageSettings, config_path: Path | None) -> tuple[DeliveryConfig, Outbox]:
    from delivery.config import DeliveryConfig
    from stores.engine import make_engine
    from stores.migrate import upgrade
    from stores.outbox import Outbox

    path = config_path or settings.delivery_config
    if path is None:
        raise UserError("no delivery config: pass --config FILE or set TRIAGE_DELIVERY_CONFIG (docs/events.md)")
    config = DeliveryConfig.from_file(path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return config, Outbox(engine, config.subscriptions())


@events_app.command("status")
@one_line_errors
def status(config: ConfigOption = None) -> None:
    """Per subscriber: events pending, being retried and dead, and the oldest pending."""
    cfg, outbox = _outbox(TriageSettings(), config)
    rows = [outbox.backlog(s.name) for s in cfg.subscribers]
    print_table([{"subscriber": b.subscriber, "pending": b.pending, "retrying": b.retrying, "dead": b.dead,
                  "oldest pending": b.oldest_pending_at} for b in rows],
                ["subscriber", "pending", "retrying", "dead", "oldest pending"], "no subscribers configured")


@events_app.command("dispatch")
@one_line_errors
def dispatch(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option(help="One pass over every subscriber, then stop")] = False,
    seconds: Annotated[float | None, typer.Option("--for", min=0, help="Keep delivering this long")] = None,
) -> None:
    """Deliver the due events now, in the foreground (the service's workers do this in the background)."""
    from datetime import UTC, datetime

    from delivery.dispatcher import Dispatcher

    cfg, outbox = _outbox(TriageSettings(), config)
    with Dispatcher(outbox, cfg) as dispatcher:
        if once:
            typer.echo(f"delivered {dispatcher.run_once()} event(s)")
        else:
            dispatcher.run(datetime.now(UTC) + timedelta(seconds=seconds) if seconds is not None else None)
        metrics = dispatcher.metrics()
    print_table([{"subscriber": name, "delivered": m.delivered, "failed": m.failed, "dead-lettered": m.dead_lettered,
                  "pending": m.pending, "last error": m.last_error} for name, m in metrics.subscribers.items()],
                ["subscriber", "delivered", "failed", "dead-lettered", "pending", "last error"])


@events_app.command("dead")
@one_line_errors
def dead(subscriber: Annotated[str, typer.Argument(help="Subscriber name")], config: ConfigOption = None,
         limit: Annotated[int, typer.Option(min=1)] = 100) -> None:
    """Events a subscriber refused until they were dead-lettered."""
    _, outbox = _outbox(TriageSettings(), config)
    print_table([{"event": d.event_id, "topic": d.topic, "key": d.key, "attempts": d.attempts,
                  "last error": d.last_error} for d in outbox.dead(subscriber, limit)],
                ["event", "topic", "key", "attempts", "last error"], "no dead letters")


@events_app.command("retry-dead")
@one_line_errors
def retry_dead(subscriber: Annotated[str, typer.Argument(help="Subscriber name")], config: ConfigOption = None,
               event: Annotated[list[str] | None, typer.Option(help="Only these event ids")] = None) -> None:
    """Make a subscriber's dead letters pending again (after the subscriber was fixed)."""
    _, outbox = _outbox(TriageSettings(), config)
    typer.echo(f"{outbox.retry_dead(subscriber, event)} dead letter(s) pending again for {subscriber}")


@events_app.command("purge")
@one_line_errors
def purge(config: ConfigOption = None,
          older_than_days: Annotated[float | None, typer.Option(min=0, help="Default: TRIAGE_OUTBOX_RETENTION_DAYS")]
          = None) -> None:
    """Delete delivered events older than the retention (pending and dead ones are kept)."""
    from datetime import UTC, datetime

    settings = TriageSettings()
    _, outbox = _outbox(settings, config)
    days = older_than_days if older_than_days is not None else settings.outbox_retention_days
    typer.echo(f"purged {outbox.purge(datetime.now(UTC) - timedelta(days=days))} delivered event(s)")
