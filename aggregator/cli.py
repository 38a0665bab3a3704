"""``localfeed-aggregator``: run the aggregator and manage its sources from a shell.

Settings come from the environment (DATABASE_URL, REDIS_URL, ...), as for ``create_app``.
"""

from __future__ import annotations

import threading

import click
from flask import Flask
from sqlalchemy import Engine, func, select

from aggregator import create_app, housekeeping, search_index
from aggregator.auth import create_operator
from aggregator.discovery import DiscoveryError
from aggregator.harvest import harvest_source, place_waiting_rows
from aggregator.jobs import enqueue_due, run_scheduler, start_scheduler
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.store import MIGRATIONS, merged, sources
from aggregator.worker import (
    HOUSEKEEPING_INTERVAL,
    WORKER_TTL,
    HousekeepingSimpleWorker,
    HousekeepingWorker,
)
from federation.db import compacted
from federation.dbcommands import db_commands
from federation.queue import redis_for


def _app(ctx: click.Context) -> Flask:
    if ctx.obj is None:
        ctx.obj = create_app()
    return ctx.obj


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Follow community activity feeds, merge them, and serve the result."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web app; without REDIS_URL, also run the harvest scheduler in this process."""
    housekeeping.bound_malloc_arenas()  # before the server's threads: see its docstring
    housekeeping.keep_releasing_freed_memory()
    app = _app(ctx)
    if not app.config["PUBLIC_URL"]:
        click.echo(
            "PUBLIC_URL is not set: set it to this aggregator's public address, so that items coming "
            "back to it through other aggregators are recognised and ignored."
        )
    if not app.config["REDIS_URL"]:
        start_scheduler(job_config(app))
        click.echo("No REDIS_URL: harvests run in this process.")
    else:
        click.echo(
            f"Harvests go to rq queue {app.config['RQ_QUEUE']!r}; run `localfeed-aggregator worker` "
            "and `localfeed-aggregator schedule` too."
        )
    app.run(host=host, port=port, threaded=True)


@main.command()
@click.option("--once", is_flag=True, help="Queue the due harvests once and exit.")
@click.pass_context
def schedule(ctx: click.Context, once: bool) -> None:
    """Queue harvests of due sources, every SCHEDULER_TICK seconds (for deployments with rq workers)."""
    config = job_config(_app(ctx))
    if once:
        click.echo(f"Queued {len(enqueue_due(config))} harvest(s).")
        return
    run_scheduler(config, threading.Event())


@main.command()
@click.argument("queues", nargs=-1)
@click.option("--name", default=None, help="A fixed name for this worker; it can restart under it at once.")
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
@click.option(
    "--with-scheduler/--without-scheduler",
    default=True,
    show_default=True,
    help="Also run the jobs rq holds back for later (delivery retries).",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="Run each job in the worker's own process, not a forked child (killing the worker kills its job).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    queues: tuple[str, ...],
    name: str | None,
    burst: bool,
    with_scheduler: bool,
    in_process: bool,
) -> None:
    """Run the jobs queued on Redis (harvests, subscriptions, deliveries): rq's worker, with housekeeping.

    QUEUES default to RQ_QUEUE. At start and every minute it fails the jobs of workers that
    were killed, so their sources are harvested again, and a restart under a fixed --name
    is not refused because the killed worker's registration is still there.
    """
    housekeeping.bound_malloc_arenas()
    if ctx.obj is None:
        ctx.obj = create_app({"HUB_WORKER": False})  # the web process runs the hub's thread
    app = ctx.obj
    if not app.config["REDIS_URL"]:
        raise click.ClickException(
            "REDIS_URL is not set, so there is no queue to work on: without Redis, harvests run in "
            "`localfeed-aggregator schedule` (or `serve`). Set REDIS_URL to the Redis the web app uses."
        )
    worker_class = HousekeepingSimpleWorker if in_process else HousekeepingWorker
    rq_worker = worker_class(
        list(queues) or [app.config["RQ_QUEUE"]],
        connection=redis_for(app.config["REDIS_URL"]),
        name=name,
        worker_ttl=WORKER_TTL,
        maintenance_interval=HOUSEKEEPING_INTERVAL,
    )
    rq_worker.store_config = job_config(app)
    rq_worker.work(burst=burst, with_scheduler=with_scheduler)


@main.command("add-source")
@click.argument("url")
@click.option("--approve", is_flag=True, help="Approve it now, so it is harvested.")
@click.option("--trust", default=50, show_default=True, type=click.IntRange(0, 100))
@click.option(
    "--kind", default=None, help="The feed format, if URL is the feed itself (else it is discovered)."
)
@click.option("--name", default="", help="A name for the source (else taken from its page).")
@click.pass_context
def add_source_command(
    ctx: click.Context, url: str, approve: bool, trust: int, kind: str | None, name: str
) -> None:
    """Follow the feed at URL, or the feed a publisher's home page at URL links to.

    The search for the feed is waited for here (a command line waits), within its time limit.
    """
    app = _app(ctx)
    try:
        source_id = add_source(
            app.extensions["engine"],
            url,
            kind=kind,
            name=name,
            state="approved" if approve else "pending",
            trust=trust,
            config=app.config,
        )
    except (ValueError, DiscoveryError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added source {source_id} ({'approved' if approve else 'pending approval'}).")


@main.command()
@click.argument("source", required=False, type=int)
@click.option("--all", "all_", is_flag=True, help="Harvest every approved source.")
@click.pass_context
def harvest(ctx: click.Context, source: int | None, all_: bool) -> None:
    """Harvest SOURCE (an id) or --all approved sources now, in this process."""
    if (source is None) == (not all_):
        raise click.UsageError("Give one SOURCE id, or --all.")
    app = _app(ctx)
    with app.extensions["engine"].connect() as conn:
        query = select(sources.c.id).where(sources.c.state == "approved").order_by(sources.c.id)
        ids = [source] if source is not None else list(conn.execute(query).scalars())
    config = job_config(app)
    failed = 0
    with click.progressbar(ids, label="Harvesting", show_pos=True) as bar:
        results = [harvest_source(source_id, config) for source_id in bar]
    for result in results:
        line = (
            f"source {result.source_id}: {result.status}, {result.pages} page(s), {result.updated} updated, "
            f"{result.deleted} deleted, {result.quarantined} refused"
        )
        click.echo(line + (f" — {result.message}" if result.message else ""))
        failed += result.status in ("error", "gone", "busy", "skipped")
    if failed:
        raise click.exceptions.Exit(1)


@main.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Build the search index again from the merged items, e.g. after an upgrade that changes it."""
    app = _app(ctx)
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).where(merged.c.state == "updated")).scalar_one()
    with click.progressbar(length=total, label="Rebuilding the search index", show_pos=True) as bar:
        written = search_index.rebuild(engine, on_batch=bar.update)
    located = place_waiting_rows(engine, job_config(app))  # postcodes new to the table, if any
    click.echo(f"Search index rebuilt: {written:,} activities; {located} more postcode(s) located.")


@main.command("housekeeping")
@click.pass_context
def housekeeping_command(ctx: click.Context) -> None:
    """Purge what is past its retention (old deletions, tombstones, delivered pushes), then compact the
    database. The worker (or, without Redis, `serve`) does this every HOUSEKEEPING_SECONDS by itself."""
    app = _app(ctx)
    report = housekeeping.run(app.extensions["engine"], job_config(app))
    database = compacted(report.pop("database"))
    removed = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in report.items())
    click.echo(f"Removed {removed}. {database}".strip())


@main.command("create-operator")
@click.argument("email")
@click.password_option()
@click.pass_context
def create_operator_command(ctx: click.Context, email: str, password: str) -> None:
    """Create an operator account that can log in and manage sources."""
    try:
        create_operator(_app(ctx).extensions["engine"], email, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Operator {email} created.")


def _upgraded() -> Engine:
    """The app's engine, its database upgraded as the app starts (``db upgrade``)."""
    return create_app({"HUB_WORKER": False, "DATABASE_AUTO_UPGRADE": True}).extensions["engine"]


main.add_command(db_commands(MIGRATIONS, _upgraded))
