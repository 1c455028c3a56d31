"""``docjobs webhooks list|create|update|delete|deliveries|replay``: the tenant's webhook
endpoints and the deliveries made to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .connection import DEFAULT_URL, KeyOpt, UrlOpt, client_of, fail, table

if TYPE_CHECKING:
    from docjobs.client.models import Delivery, WebhookEndpoint

webhooks_app = typer.Typer(
    no_args_is_help=True, help="Manage the endpoints told about the tenant's finished jobs."
)


def _endpoint_line(endpoint: WebhookEndpoint) -> str:
    events = ",".join(endpoint.events)
    return f"{endpoint.id}  {endpoint.url}  {events}  {endpoint.description}".rstrip()


@webhooks_app.command("list")
def webhooks_list(key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """List the key's tenant's webhook endpoints: id, URL, events, description."""
    with client_of(url, key) as client:
        endpoints = client.webhooks.list()
    for endpoint in endpoints:
        typer.echo(_endpoint_line(endpoint))


@webhooks_app.command("create")
def webhooks_create(
    endpoint_url: Annotated[str, typer.Argument(help="Where events are POSTed.")],
    key: KeyOpt,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event to send (job.completed, job.failed, job.cancelled); repeatable; "
            "all of them when not given.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Register an endpoint; prints `ID URL` and its signing secret, which is shown only now."""
    with client_of(url, key) as client:
        endpoint = client.webhooks.create(endpoint_url, event or None, description)
    typer.echo("Created webhook endpoint:")
    typer.echo(f"{endpoint.id}  {endpoint.url}  {','.join(endpoint.events)}")
    typer.echo(f"secret: {endpoint.secret}")


@webhooks_app.command("update")
def webhooks_update(
    endpoint_id: str,
    key: KeyOpt,
    endpoint_url: Annotated[
        str | None,
        typer.Argument(help="Where events are POSTed from now on; unchanged when not given."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event to send (job.completed, job.failed, job.cancelled); repeatable; "
            "replaces the endpoint's events; unchanged when not given.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(help='A note for people ("" clears it); unchanged when not given.'),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Change an endpoint's URL, events or description; its secret stays. Prints it as
    `list` does."""
    if endpoint_url is None and not event and description is None:
        raise fail("nothing to change: give a new URL, --event or --description", 2)
    with client_of(url, key) as client:
        endpoint = client.webhooks.update(
            endpoint_id, url=endpoint_url, events=event or None, description=description
        )
    typer.echo("Updated webhook endpoint:")
    typer.echo(_endpoint_line(endpoint))


@webhooks_app.command("delete")
def webhooks_delete(endpoint_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete an endpoint: no more events go to it."""
    with client_of(url, key) as client:
        client.webhooks.delete(endpoint_id)
    typer.echo(f"Deleted {endpoint_id}")


DeliveriesOf = Annotated[
    str,
    typer.Argument(
        help="An endpoint id (wh_...), or a job id (job_...) for that job's deliveries to every"
        " target, its own webhookUrl included.",
        metavar="ENDPOINT_ID|JOB_ID",
    ),
]


def _answer(delivery: Delivery) -> str:
    """The last try's answer in words: ``HTTP 500``, or the error that stood for one."""
    last = delivery.last_answer
    if last is None:
        return "-"
    return f"HTTP {last.status_code}" if last.status_code is not None else last.error or "-"


def _delivery_row(delivery: Delivery) -> tuple[str, ...]:
    delivered = "yes" if delivery.delivered else "no"
    when, tries, answer = delivery.timestamp, str(delivery.tries), _answer(delivery)
    return (delivery.id, delivery.event, when, tries, answer, delivered, delivery.target)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    of: DeliveriesOf,
    key: KeyOpt,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Deliveries per page.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="The `next cursor` a previous page printed.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """List settled webhook deliveries, newest job first: id, event, time, tries, last
    answer, delivered, target; then the cursor of the next page, if any."""
    next_cursor: str | None = None
    with client_of(url, key) as client:
        if of.startswith("job_"):
            deliveries = client.webhooks.job_deliveries(of)
        else:
            page = client.webhooks.deliveries(of, limit=limit, cursor=cursor)
            deliveries, next_cursor = page.deliveries, page.next_cursor
    header = ("ID", "EVENT", "TIME", "TRIES", "LAST ANSWER", "DELIVERED", "TARGET")
    table(header, [_delivery_row(d) for d in deliveries])
    if next_cursor:
        typer.echo(f"next cursor: {next_cursor}")


@webhooks_app.command("replay")
def webhooks_replay(
    of: DeliveriesOf,
    delivery_id: Annotated[str, typer.Argument(help="The ID `deliveries` lists.")],
    key: KeyOpt,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Send a delivery again (same webhook-id and body, signed afresh) and print the
    receiver's answer; exits 1 when it is not a 2xx."""
    with client_of(url, key) as client:
        if of.startswith("job_"):
            replayed = client.webhooks.replay_job_delivery(of, delivery_id)
        else:
            replayed = client.webhooks.replay(of, delivery_id)
    answer = replayed.replay
    if answer is None:
        typer.echo("Replay sent; no answer yet: see `docjobs webhooks deliveries`.")
        return
    typer.echo(f"Replayed {delivery_id}: {_answer(replayed.delivery)}")
    if answer.status_code is None or not 200 <= answer.status_code < 300:
        raise typer.Exit(1)
