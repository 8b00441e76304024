"""The ``skyfleet`` command: one sub-command group per capability, plus ``demo``.

Errors a user can cause print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from skyfleet import __version__
from skyfleet.cli._common import err, fail
from skyfleet.cli._demo import demo
from skyfleet.cli._fleet import fleet_app
from skyfleet.cli._links import constellation_app, link, places_app
from skyfleet.cli._powershare import powershare_app
from skyfleet.cli._rollouts import device_app, release_app, rollout_app
from skyfleet.cli._route import route_app
from skyfleet.cli._serve import serve
from skyfleet.cli._sites import site_app
from skyfleet.cli._tokens import token_app
from skyfleet.cli._trust import trust_app
from skyfleet.errors import SkyfleetError

__all__ = ["app", "main"]

app = typer.Typer(
    name="skyfleet",
    help="Run a satellite-connected fleet: LEO links from anywhere, staged OTA rollouts, vehicle-to-home power sharing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"skyfleet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run a satellite-connected fleet: LEO links from anywhere, staged OTA rollouts,
    vehicle-to-home power sharing.

    Start with 'skyfleet demo', then 'skyfleet link --help', 'skyfleet serve --help' or
    'skyfleet powershare --help'.
    """


app.command("demo")(demo)
app.command("link")(link)
app.add_typer(constellation_app, name="constellation")
app.add_typer(places_app, name="places")
app.add_typer(route_app, name="route")
app.add_typer(powershare_app, name="powershare")
app.add_typer(site_app, name="site")
app.command("serve")(serve)
app.add_typer(device_app, name="device")
app.add_typer(fleet_app, name="fleet")
app.add_typer(release_app, name="release")
app.add_typer(rollout_app, name="rollout")
app.add_typer(token_app, name="token")
app.add_typer(trust_app, name="trust")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line; bad input is one line on stderr and status 2."""
    try:
        status = app(args=argv, prog_name="skyfleet", standalone_mode=False)
        if isinstance(status, int) and not isinstance(status, bool):
            return status  # click hands back typer.Exit(N) as N outside standalone mode
    except SkyfleetError as exc:
        raise SystemExit(fail(str(exc)).exit_code) from None
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        return 130
    except TyperException as exc:  # usage errors: unknown option, missing value, bad type
        ctx = getattr(exc, "ctx", None)
        hint = f" (try '{ctx.command_path} --help')" if ctx is not None else ""
        raise SystemExit(fail(exc.format_message() + hint).exit_code) from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
