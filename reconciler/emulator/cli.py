"""`reconciler emulator`: serve a local stand-in for the API Gateway endpoint until interrupted.

The first line on stdout is exactly ``Emulator listening on http://HOST:PORT`` (the real port when
``--port 0``), flushed at once so a script can read it and connect. The access key secret is never
printed.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.emulator.faults import MALFORMED_KINDS, FaultConfig
from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, serve_forever
from reconciler.emulator.state import EmulatorState
from reconciler.errors import InputError

ACCESS_KEY_SECRET_VARIABLE = "RECONCILER_EMULATOR_ACCESS_KEY_SECRET"


def _announce(url: str) -> None:
    print(f"Emulator listening on {url}", flush=True)


@click.command("emulator")
@click.option("--state", "state_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML state file to seed the emulator with.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback only, unless --allow-remote.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --host that is not loopback (the emulator hands out signature secrets to anyone "
                   "holding its credentials).")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 = any free port.")
@click.option("--access-key-id", default=DEFAULT_ACCESS_KEY_ID, show_default=True,
              help="Access key id the emulator accepts (emulator-only credentials).")
@click.option("--access-key-secret", default=DEFAULT_ACCESS_KEY_SECRET, envvar=ACCESS_KEY_SECRET_VARIABLE,
              show_envvar=True,
              help="Access key secret the emulator accepts [default: the emulator-only 'testsecret']. Prefer the "
                   f"environment variable {ACCESS_KEY_SECRET_VARIABLE}: every user of the machine sees a "
                   "command line's flags (ps, /proc).")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(min=0), help="Latency added to every request.")
@click.option("--throttle-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of requests answered 400 Throttling.User.")
@click.option("--error-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of requests answered 503 ServiceUnavailable.")
@click.option("--qps-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Requests per second per access key; beyond it 400 Throttling.User (as the vendor's flow control).")
@click.option("--reset-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of connections reset without an answer.")
@click.option("--hang-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of requests never answered (the client must time out).")
@click.option("--malformed-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of answers garbled after the request was carried out: truncated JSON, an HTML page, "
                   "a wrong Content-Type, or a field left out.")
@click.option("--malformed-kind", "malformed_kinds", multiple=True, type=click.Choice(MALFORMED_KINDS),
              help="Kind of garbled answer (repeatable; default: every kind).")
@click.option("--spike-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of requests delayed by up to --spike-ms more (latency spikes).")
@click.option("--spike-ms", default=1000.0, show_default=True, type=click.FloatRange(min=0),
              help="Longest latency spike.")
@click.option("--mutate-between-pages", "mutate_rate", default=0.0, type=click.FloatRange(0, 1), metavar="RATE",
              help="Share of requests for page 2 or later of DescribeSignatures / DescribeApiSignatures before "
                   "which what it lists changes: one item added, or one removed early and one added late.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible faults.")
@click.option("--save", is_flag=True,
              help="On shutdown, write the state (with any changes, e.g. from apply) back to the --state file; "
                   "the file is rewritten, so its comments are lost.")
def emulator_command(
    state_file: Path, host: str, allow_remote: bool, port: int, access_key_id: str, access_key_secret: str,
    latency_ms: float, throttle_rate: float, error_rate: float, qps_limit: float | None, reset_rate: float,
    hang_rate: float, malformed_rate: float, malformed_kinds: tuple[str, ...], spike_rate: float, spike_ms: float,
    mutate_rate: float, seed: int | None, save: bool,
) -> None:
    """Serve a local emulator of the API Gateway (CloudAPI 2016-07-14) endpoint until SIGINT/SIGTERM."""
    try:
        faults = FaultConfig(latency_ms=latency_ms, throttle_rate=throttle_rate, error_rate=error_rate, seed=seed,
                             qps_limit=qps_limit, reset_rate=reset_rate, hang_rate=hang_rate,
                             malformed_rate=malformed_rate, malformed_kinds=malformed_kinds or MALFORMED_KINDS,
                             spike_rate=spike_rate, spike_ms=spike_ms,
                             mutate_rate=mutate_rate)
        state = EmulatorState.from_file(state_file)
        final = serve_forever(state, host=host, port=port, access_key_id=access_key_id,
                              access_key_secret=access_key_secret, faults=faults, on_listening=_announce,
                              allow_remote=allow_remote)
        if save:
            final.dump_state(state_file)
            print(f"Emulator state saved to {state_file}", flush=True)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    emulator_command()
