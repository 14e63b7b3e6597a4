"""The command line. Thin: parse options, call the pipeline, print, choose the exit code.

Exit codes: 0 success (with --detailed-exitcode: no changes), 2 changes present
(only with --detailed-exitcode), 1 any error - including usage errors, which
click would otherwise report with 2 and so be mistaken for "changes present".
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from reconciler import __version__
from reconciler.errors import InputError, ManifestError, ManifestErrors, ReconcilerError
from reconciler.inert import inert
from reconciler.limits import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from reconciler.vendor_rules import MANAGED_STAGES, STAGES

if TYPE_CHECKING:
    from logging import LogRecord

    from reconciler.apply import ApplyResult
    from reconciler.export import Export
    from reconciler.limits import ConnectionOptions
    from reconciler.live import Connection
    from reconciler.manifest import DesiredState, ParsedAhead, ParsedFiles
    from reconciler.planning import EarlyStart
    from reconciler.review import Review
    from reconciler.snapshot import Snapshot
    from reconciler.targets import Target


F = TypeVar("F", bound=Callable[..., Any])


def say(line: str, *, err: bool = False) -> None:
    """Print one line that may hold values from outside: escaped, so it stays one inert line."""
    click.echo(inert(line), err=err)


class _InertLog:
    """--debug lines carry what the endpoint answered: each message is escaped to one line. (A filter is
    anything with this method; not subclassing logging.Filter keeps logging out of start-up.)"""

    def filter(self, record: LogRecord) -> bool:
        record.msg, record.args = inert(record.getMessage()), None
        return True


def manifest_options(*, secrets_optional: bool = True) -> Callable[[F], F]:
    """Options shared by every command that reads manifests; `apply` always needs the secrets, so it has no
    --skip-secrets."""

    def decorate(func: F) -> F:
        if secrets_optional:
            func = click.option("--skip-secrets", is_flag=True,
                                help="Resolve no ${env:...}; compare keys and bindings only (e.g. PRs from "
                                     "forks).")(func)
        func = click.option("--env-file", "env_files", multiple=True,
                            type=click.Path(dir_okay=False, path_type=Path),
                            help="dotenv file with variables for ${env:...}. Repeatable: every file is read in "
                                 "order, a later file wins over an earlier one, and the environment wins over "
                                 "all files.")(func)
        func = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))(func)
        return func

    return decorate


def _complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """`--target` completion: the two kinds, then the signature names or group ids the manifests declare."""
    from reconciler.manifest import load_desired_state

    kinds = ["signature=", "group="]
    kind, sep, _ = incomplete.partition("=")
    if not sep:
        return [k for k in kinds if k.startswith(incomplete)]
    # While completing, click leaves the PATHS typed so far unparsed in ctx.args.
    paths = ctx.params.get("paths") or tuple(Path(arg) for arg in ctx.args if not arg.startswith("-"))
    try:
        desired = load_desired_state(paths, env=None)
    except ReconcilerError:
        return []
    if kind == "signature":
        values = sorted({name for r in desired.regions.values() for name in r.signatures})
    elif kind == "group":
        values = sorted({group for r in desired.regions.values() for group, _ in r.scopes()})
    else:
        return []
    return [f"{kind}={v}" for v in values if f"{kind}={v}".startswith(incomplete)]


def _enable_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # given twice (before and after the command), the second call changes nothing
        import logging

        ctx.find_root().meta["reconciler.debug"] = True
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _InertLog) for f in handler.filters):
                handler.addFilter(_InertLog())


def _debugging() -> bool:
    """Whether --debug was given, before or after the command."""
    return bool(click.get_current_context().find_root().meta.get("reconciler.debug"))


def debug_option() -> click.Option:
    """`--debug`, before or after the command name (`reconciler --debug plan` and `reconciler plan --debug`)."""
    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_enable_debug,
                        help="Log requests and decisions to stderr (secrets are redacted).")


def output_option(func: F) -> F:
    return click.option("-o", "--output", "output_format",
                        type=click.Choice(["text", "json", "markdown"], case_sensitive=False),
                        default="text", show_default=True,
                        help="text for a terminal, json for a program (docs/plan.schema.json), markdown for a "
                             "pull-request comment.")(func)


def no_color_option(func: F) -> F:
    return click.option("--no-color", is_flag=True,
                        help="No colour (also with NO_COLOR set, or when stdout is not a terminal).")(func)


def warn(message: str) -> None:
    say(f"Warning: {message}", err=True)


def use_color(no_color: bool) -> bool:
    return sys.stdout.isatty() and not no_color and "NO_COLOR" not in os.environ


def _connection_option_list() -> list[Callable[[F], F]]:
    return [
        click.option("--endpoint", help="API endpoint URL (default: https://apigateway.REGION.aliyuncs.com; "
                                    "plain http only to loopback)."),
        click.option("--emulator", "emulator_states", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Start an embedded emulator seeded from this state file and use it (repeat: one state "
                          "file per region)."),
        click.option("--profile",
                     help="Use only this profile of ~/.aliyun/config.json (without it: the vendor's credential "
                          "chain, where ALIBABA_CLOUD_PROFILE names the profile)."),
        click.option("--signature-version", type=click.Choice(["v3", "v1"]), default="v3", show_default=True,
                     help="Request signing: ACS3-HMAC-SHA256 (v3) or RPC HMAC-SHA1 (v1)."),
        click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=DEFAULT_CONCURRENCY,
                     show_default=True, help="Requests in flight at most."),
        click.option("--max-rps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Requests a second at most (default: as many as the API accepts; the rate adapts "
                          "to its throttling either way)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Seconds per request."),
        click.option("--quiet", "-q", is_flag=True, help="No progress on stderr."),
    ]


def connection_options(func: Callable[..., int]) -> Callable[..., int]:
    """Options shared by every command that talks to the API (or to an embedded emulator); the command
    receives them as one `connection: ConnectionOptions`, and `quiet`."""

    @functools.wraps(func)
    def with_connection(*, endpoint: str | None, emulator_states: tuple[Path, ...], profile: str | None,
                        signature_version: str, concurrency: int, max_rps: float | None, timeout: float,
                        **rest: Any) -> int:
        given = click.get_current_context().get_parameter_source("profile")
        if emulator_states and profile is not None and given is click.core.ParameterSource.COMMANDLINE:
            # ALIBABA_CLOUD_PROFILE set in the environment is simply not used; a --profile typed on the
            # command line would otherwise look as if it had been.
            raise InputError("give --profile or --emulator, not both: the embedded emulator uses credentials made "
                             "up for the run")
        from reconciler.limits import ConnectionOptions

        connection = ConnectionOptions(endpoint=endpoint, emulator_states=emulator_states, profile=profile,
                                       signature_version="v1" if signature_version == "v1" else "v3",
                                       concurrency=concurrency, max_rps=max_rps, timeout=timeout)
        return func(connection=connection, **rest)

    decorated: Callable[..., int] = with_connection
    for option in reversed(_connection_option_list()):
        decorated = option(decorated)
    return decorated


def manifest_env(env_files: tuple[Path, ...], skip_secrets: bool) -> dict[str, str] | None:
    """Variables for ${env:...}; None under --skip-secrets (no reference is resolved). Every --env-file in
    the order given, a later one winning, and the environment over all of them."""
    from reconciler.manifest import load_env_file

    if skip_secrets:
        return None
    variables: dict[str, str] = {}
    for env_file in env_files:
        variables.update(load_env_file(env_file))
    return {**variables, **os.environ}


def load_manifests(paths: tuple[Path, ...], env_files: tuple[Path, ...], skip_secrets: bool,
                   parsed: ParsedFiles | None = None, ahead: ParsedAhead | None = None) -> DesiredState:
    from reconciler.manifest import load_desired_state

    desired = load_desired_state(paths, env=manifest_env(env_files, skip_secrets), parsed=parsed, ahead=ahead)
    if not desired.regions:
        raise ReconcilerError("the manifests declare no region")
    return desired


class _LazyGroup(click.Group):
    """A group whose commands named in `lazy` are imported only when used (or listed by --help)."""

    lazy: ClassVar[dict[str, str]] = {"emulator": "reconciler.emulator.cli:emulator_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, name = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), name)
            self.add_command(_finished(command), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative state for Alibaba Cloud API Gateway backend signature keys and their API bindings."""


@cli.command()
@manifest_options()
def validate(paths: tuple[Path, ...], env_files: tuple[Path, ...], skip_secrets: bool) -> int:
    """Check manifests without reading any live state."""
    from reconciler.manifest import warning_lines

    desired = load_manifests(paths, env_files, skip_secrets)
    for line in warning_lines(desired.warnings, each=_debugging()):
        say(f"Warning: {line}", err=True)
    signatures = sum(len(r.signatures) for r in desired.regions.values())
    bindings = sum(r.binding_count() for r in desired.regions.values())
    files = sum(len(r.files) for r in desired.regions.values())
    click.echo(f"Valid: {files} file(s), {len(desired.regions)} region(s), {signatures} signature(s), "
               f"{bindings} binding(s).")
    if skip_secrets:
        click.echo("Secrets were not checked (--skip-secrets).")
    return 0


@cli.command("env-names")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def env_names_command(paths: tuple[Path, ...]) -> int:
    """Print the environment variables the manifests' ${env:...} secrets read, one a line (none are read)."""
    from reconciler.manifest import env_names

    for name in env_names(load_manifests(paths, (), skip_secrets=True)):
        click.echo(name)
    return 0


def read_with_progress(desired: DesiredState, connection: Connection, quiet: bool) -> dict[str, Snapshot]:
    from reconciler.live import read_live_state
    from reconciler.progress import progress_on_stderr

    with progress_on_stderr(quiet) as progress:
        return read_live_state(desired, connection, progress)


def render(result: Review, output_format: str, *, color: bool, compact: bool = False) -> str:
    from reconciler.render.plan import render_compact, render_json, render_markdown, render_text

    if output_format == "json":
        return render_json(result)
    if output_format == "markdown":
        return render_markdown(result)
    return render_compact(result, color=color) if compact else render_text(result, color=color)


@cli.command()
@manifest_options()
@connection_options
@click.option("--snapshot", "snapshot_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Plan against live state saved in a JSON snapshot file (offline).")
@click.option("--save-snapshot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the live state read to FILE (JSON; secrets as scrypt digests).")
@output_option
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rendered plan to FILE instead of stdout.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when changes are pending.")
@click.option("--out-plan", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the plan for `apply --plan-file` (JSON; no secrets; tied to this live state).")
@no_color_option
@click.option("--compact", is_flag=True, help="Text: one line per change.")
@click.option("--target", "targets", multiple=True, metavar="signature=NAME|group=ID", shell_complete=_complete_target,
              help="Show only changes to this signature or API group (repeatable; globs allowed).")
@click.option("--base-ref", metavar="REF", help="Label each change introduced, drift or resolved against the same "
                                               "manifest paths at git REF (e.g. origin/main).")
@click.option("--base", "base_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Like --base-ref, with the base's manifests in PATH.")
@click.option("--changed-only", is_flag=True,
              help="With --base-ref/--base: read and plan only the signatures and (group, stage) scopes whose "
                   "declarations differ from the base (drift elsewhere is not shown).")
def plan(paths: tuple[Path, ...], env_files: tuple[Path, ...], skip_secrets: bool, connection: ConnectionOptions,
         quiet: bool, snapshot_file: Path | None, save_snapshot: Path | None,
         output_format: str, out_file: Path | None, detailed_exitcode: bool, out_plan: Path | None,
         no_color: bool, compact: bool, targets: tuple[str, ...], base_ref: str | None,
         base_path: Path | None, changed_only: bool) -> int:
    """Compare manifests with the live state and print what would change."""
    from reconciler.planning import live_state, read_early, read_plan_inputs

    chosen_targets = parse_targets(targets)
    output_format = output_format.lower()
    if compact and output_format != "text":
        raise InputError(f"--compact is a text view; it does not go with -o {output_format}")
    saves_live_state = out_plan is not None or save_snapshot is not None
    with read_early(paths, snapshot_file, connection, changed_only=changed_only) as early:
        inputs = read_plan_inputs(functools.partial(load_manifests, paths, env_files, skip_secrets), paths=paths,
                                  env=manifest_env(env_files, skip_secrets), base_ref=base_ref,
                                  base_path=base_path, changed_only=changed_only, saves_live_state=saves_live_state,
                                  meanwhile=functools.partial(_prepare_fetch, early))
        snapshots = inputs.snapshots(live_state(inputs.fetch_view(), snapshot_file, connection, quiet=quiet,
                                                warn=warn, signature_names=inputs.signature_names, early=early.read))
    from reconciler.differ import diff
    from reconciler.output import write_output
    from reconciler.planning import review_plan, saved_review
    from reconciler.render.plan import summary_line
    from reconciler.snapshot import snapshots_file_text

    if save_snapshot is not None:
        write_output(snapshots_file_text(snapshots.values()), save_snapshot)
    result = diff(inputs.desired, snapshots)
    if out_plan is not None:
        from reconciler.saved_plan import save_plan

        save_plan(saved_review(result, chosen_targets, inputs.desired), inputs.desired, snapshots, out_plan)
    shown = review_plan(result, inputs, snapshots, chosen_targets)
    color = out_file is None and use_color(no_color)
    write_output(render(shown, output_format, color=color, compact=compact), out_file)
    if out_file is not None:
        # The plan went to a file: the CI log still gets the one line a reader looks for.
        click.echo(summary_line(shown.plan), err=True)
    return 2 if detailed_exitcode and (shown.plan.has_changes or shown.plan.violations) else 0


def parse_targets(targets: tuple[str, ...]) -> list[Target]:
    if not targets:  # `plan` imports the plan's models while its manifests are parsed, not before
        return []
    from reconciler.targets import parse_target

    return [parse_target(t) for t in targets]


def _prepare_fetch(early: EarlyStart, forked: bool) -> None:
    """Before `plan` loads its manifests: start the early read of the live state (where it applies); and, while
    a child process parses them (`forked`), import what runs after loading (the API client above all). Not
    otherwise: a plan offline (`--snapshot`) never imports the API client."""
    early.start()
    if not forked:
        return
    for module in ("reconciler.live", "reconciler.differ", "reconciler.policy", "reconciler.render.plan",
                   "reconciler.targets"):
        importlib.import_module(module)


@cli.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@connection_options
@click.option("-o", "--output", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the scan to FILE instead of stdout.")
@click.option("--save-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the scan as JSON to FILE (one read for the issue and the artifact).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 on a finding: a signature policy violation or a signature in no manifest.")
def scan_command(paths: tuple[Path, ...], connection: ConnectionOptions, quiet: bool, output_format: str,
                 out_file: Path | None, save_json: Path | None, detailed_exitcode: bool) -> int:
    """Read every region (DescribeRegions) and report signatures in no manifest and the backend-signature
    coverage of published APIs per group and stage (the manifests' signature policy marks required stages)."""
    from reconciler.live import open_connection, read_account
    from reconciler.manifest import DesiredState, load_desired_state
    from reconciler.output import write_output
    from reconciler.progress import progress_on_stderr
    from reconciler.render.scan import render_json as render_scan_json
    from reconciler.render.scan import render_markdown as render_scan_markdown
    from reconciler.render.scan import render_text as render_scan_text
    from reconciler.scan import build_scan

    desired = (load_desired_state(paths, env=None) if paths
               else DesiredState(regions={}, secrets_checked=False))
    with (open_connection(connection, desired.regions, serve_all_states=True) as live,
          progress_on_stderr(quiet) as progress):
        snapshots = read_account(live, desired.regions, progress)
    result = build_scan(desired, snapshots)
    rendered = {"json": render_scan_json, "markdown": render_scan_markdown}.get(output_format, render_scan_text)
    if save_json is not None:
        write_output(render_scan_json(result), save_json)
    write_output(rendered(result), out_file)
    return 2 if detailed_exitcode and result.has_findings else 0


@cli.command()
@click.option("--plan", "plan_schema", is_flag=True, help="Print the JSON Schema of `plan -o json` instead.")
@click.option("--scan", "scan_schema", is_flag=True, help="Print the JSON Schema of `scan -o json` instead.")
def schema(plan_schema: bool, scan_schema: bool) -> int:
    """Print the JSON Schema of manifest files (manifests/schema.json)."""
    from reconciler.manifest import manifest_json_schema
    from reconciler.review import plan_json_schema
    from reconciler.scan import scan_json_schema

    if plan_schema and scan_schema:
        raise InputError("give --plan or --scan, not both")
    document = plan_json_schema() if plan_schema else scan_json_schema() if scan_schema else manifest_json_schema()
    click.echo(json.dumps(document, indent=2))
    return 0


@cli.command("apply")
@manifest_options(secrets_optional=False)
@connection_options
@no_color_option
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--plan-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Carry out this saved plan (`plan --out-plan`) without asking, as reviewed; refused when the "
                   "live state or the manifests changed since.")
def apply_command(paths: tuple[Path, ...], env_files: tuple[Path, ...], connection: ConnectionOptions,
                  quiet: bool, no_color: bool, auto_approve: bool, plan_file: Path | None) -> int:
    """Make the live state match the manifests: create, update, rebind, bind, unbind, delete (prune: true)."""
    from reconciler.apply import apply_plan, refuse_blocked
    from reconciler.differ import diff
    from reconciler.live import open_connection
    from reconciler.planning import group_names
    from reconciler.render.plan import render_text
    from reconciler.review import Review
    from reconciler.saved_plan import check_saved_plan, load_saved_plan

    will_ask = not auto_approve and plan_file is None
    desired = load_manifests(paths, env_files, skip_secrets=False)
    saved = load_saved_plan(plan_file) if plan_file is not None else None
    with open_connection(connection, desired.regions, allow_writes=True, warn=warn) as live:
        snapshots = read_with_progress(desired, live, quiet)
        current = diff(desired, snapshots)
        shown = Review(current) if saved is None else check_saved_plan(saved, current, desired, snapshots)
        if not shown.plan.has_changes:
            click.echo("No changes. Live state matches the manifests.")
            return 0
        if will_ask and not sys.stdin.isatty():
            raise InputError("apply asks for confirmation but stdin is not a terminal; pass --auto-approve")
        shown = shown.with_group_names(group_names(snapshots))
        click.echo(render_text(shown, color=use_color(no_color)))
        refuse_blocked(shown.plan)
        confirm_apply(connection, ask=will_ask)
        outcome = apply_plan(shown.plan, desired, snapshots, live.client, concurrency=connection.concurrency,
                             report=say, warn=lambda line: say(line, err=True))
    report_apply_outcome(outcome)
    return 0


def confirm_apply(connection: ConnectionOptions, *, ask: bool) -> None:
    """Say where the changes go when they do not last, then (unless approved ahead) ask for a typed yes."""
    if connection.emulator_states:
        # Said before the question, so that nobody says yes expecting the changes to last.
        states = " ".join(map(str, connection.emulator_states))
        say(f"Note: the changes go to an embedded emulator and are gone when this command ends; to "
            f"keep them, serve {states} with `reconciler emulator --save` and use --endpoint.", err=True)
    if ask:
        answer = click.prompt("Apply these changes? Only 'yes' will be accepted:", default="",
                              show_default=False, prompt_suffix=" ")
        if answer != "yes":
            raise ReconcilerError("apply cancelled; nothing was changed")


def report_apply_outcome(outcome: ApplyResult) -> None:
    """What was done; a failure or an interruption ends the command as an error after the summary."""
    from reconciler.apply import ApplyInterrupted

    for line in outcome.summary():
        say(line)
    if outcome.failures:
        raise ReconcilerError("apply stopped at the first failure: " + "; ".join(outcome.failures))
    if outcome.interrupted_by is not None:
        raise ApplyInterrupted(f"apply interrupted by {outcome.interrupted_by.name}: {len(outcome.not_done)} "
                               f"step(s) not done (listed above)", 128 + outcome.interrupted_by.value)


@cli.command("export")
@connection_options
@click.option("--region", required=True, help="Region to export, e.g. cn-hangzhou.")
@click.option("--group", "groups", multiple=True, metavar="ID",
              help="API group id (32 hex characters, not the group's name) to export (repeatable).")
@click.option("--all-groups", is_flag=True, help="Export every API group of the region.")
@click.option("--stage", "stages", multiple=True, type=click.Choice(MANAGED_STAGES),
              help="Stage to read (repeatable; default RELEASE and TEST).")
@click.option("--out", default="-", show_default=True, metavar="DIR|-",
              help="Folder to write REGION.yaml into (created if missing), or - for stdout.")
@click.option("--split-by", type=click.Choice(["none", "group"]), default="none", show_default=True,
              help="group: signatures in REGION.yaml, the bindings of each group in REGION.GROUP_ID.yaml.")
@click.option("--include-secrets", is_flag=True, help="Write secrets in clear instead of ${env:NAME_SECRET}.")
@click.option("--force", is_flag=True, help="With --include-secrets, write even into a git work tree that does "
                                            "not ignore the files.")
def export_command(connection: ConnectionOptions, quiet: bool, region: str, groups: tuple[str, ...],
                   all_groups: bool, stages: tuple[str, ...], out: str, split_by: str, include_secrets: bool,
                   force: bool) -> int:
    """Write the live state of a region as manifests; a plan of them shows no changes."""
    from reconciler.export import DEFAULT_STAGES, export_manifests, header_time, source_label
    from reconciler.live import open_connection, read_region
    from reconciler.progress import progress_on_stderr

    if bool(groups) == all_groups:
        raise InputError("give either --group ID (repeatable) or --all-groups")
    if out == "-" and split_by == "group":
        raise InputError("--split-by group writes several files; give --out DIR")
    chosen_stages = tuple(s for s in STAGES if s in stages) or DEFAULT_STAGES
    with open_connection(connection, [region], wanted_by="--region is", warn=warn) as live, \
            progress_on_stderr(quiet) as progress:
        snapshot = read_region(live, region, groups or None, chosen_stages, progress)
    exported_at = header_time(snapshot.fetched_at, os.environ.get("SOURCE_DATE_EPOCH"))
    source = source_label(snapshot, connection.emulator_states)
    result = export_manifests(snapshot, exported_at=exported_at, source=source,
                              split_by="group" if split_by == "group" else "none", include_secrets=include_secrets)
    write_export(result, None if out == "-" else Path(out), force=force)
    return 0


def write_export(result: Export, out_dir: Path | None, *, force: bool) -> None:
    """Write every file (or the one file to stdout) and tell, on stderr, what was written and what to set."""
    from reconciler.export import refuse_exposed_secrets, write_export_files
    from reconciler.output import write_output

    paths = [out_dir / f.name for f in result.files] if out_dir is not None else []
    if result.holds_secrets:
        if not force:
            refuse_exposed_secrets(paths)
        where = ", ".join(map(str, paths)) or "stdout"
        say(f"Warning: writing the clear secrets of {result.signatures} signature(s) to {where}; "
            f"keep them out of version control.", err=True)
    if out_dir is None:
        write_output(result.files[0].text, None)
    else:
        for other in write_export_files(result, out_dir):
            say(f"Warning: {other} was not written by this export; plan reads every manifest of the "
                f"folder, so remove it if it declares the same signatures.", err=True)
    say(result.summary("stdout" if out_dir is None else f"{len(result.files)} file(s) in {out_dir}"), err=True)
    if result.secret_variables:
        click.echo("Before plan, set each variable to the live secret of its signature:", err=True)
        for name, variable in sorted(result.secret_variables.items(), key=lambda item: item[1]):
            say(f"  {variable}  (signature {name})", err=True)


def _finished(command: click.Command) -> click.Command:
    command.params.append(debug_option())
    # The top-level help lists each command with its whole first sentence, not click's 45 characters.
    if command.help and not command.short_help:
        command.short_help = command.help.split("\n\n", 1)[0].replace("\n", " ")
    return command


for _command in cli.commands.values():
    _finished(_command)
cli.params.append(debug_option())


def report_error(exc: ReconcilerError) -> None:
    """One line on stderr; in GitHub Actions a manifest error is also an annotation on its line of the diff."""
    from reconciler.annotations import error_annotation, in_github_actions

    say(f"Error: {exc}", err=True)
    if isinstance(exc, ManifestError) and in_github_actions(os.environ):
        click.echo(error_annotation(exc, os.environ.get("GITHUB_WORKSPACE")))


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that every `finally` runs
    (a temporary file is removed, a half-written export is rolled back) before the process ends. A
    SystemExit, because asyncio passes only SystemExit and KeyboardInterrupt out of a callback or a
    task; any other exception raised there would be logged and the run would go on."""


def terminate(signum: int, frame: object) -> None:
    """The SIGTERM handler `main` installs (apply gives it back after its writes)."""
    raise Terminated(128 + signum)


def run(argv: list[str]) -> int:
    """Run one command line; return its exit code. Every error becomes one line on stderr."""
    import signal

    _interruptions.clear()
    try:
        code = cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = report_click_error(exc)
    except click.Abort as exc:
        code = report_abort(exc)
    except KeyboardInterrupt:
        code = report_interrupted()
    except ManifestErrors as exc:
        report_manifest_errors(exc)
        code = 1
    except Terminated:
        click.echo("Terminated.", err=True)
        code = 128 + signal.SIGTERM
    except ReconcilerError as exc:
        report_error(exc)
        code = getattr(exc, "exit_code", 1)  # 128 + the signal number for ApplyInterrupted, else 1
    except Exception as exc:  # A bug: still one line, never a traceback (unless --debug).
        if _interruptions.received:  # what a Ctrl-C became inside an extension (see `interrupt`)
            code = report_interrupted()
        else:
            report_internal_error(exc)
            code = 1
    return code if isinstance(code, int) else 0


class _Interruptions:
    """This run's Ctrl-Cs: how many `interrupt` took, and whether "Interrupted." was said."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.received = 0
        self.reported = False


_interruptions = _Interruptions()


def interrupt(signum: int, frame: object) -> None:
    """The SIGINT handler `main` installs: the first Ctrl-C of a run raises KeyboardInterrupt, as Python's own
    handler does; the run then ends as soon as it can (what it started is cancelled and waited for), and later
    ones are only counted, so a double press still ends with code 130 and one line, never with a traceback
    or the signal's death halfway through that ending.

    Counting them matters too: an extension calling back into Python may turn the KeyboardInterrupt raised
    there into an error of its own (pydantic-core, building a model's validators at import, which `plan` does
    while its first requests are in flight, gives a SchemaError). After a Ctrl-C, such an error is the
    interruption, not a bug."""
    _interruptions.received += 1
    if _interruptions.received == 1:
        raise KeyboardInterrupt


def report_click_error(exc: click.ClickException) -> int:
    """One line, like every other error (click's own would add usage lines, and echo the value as given)."""
    message = exc.format_message()
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message = f"{message if message.endswith('.') else message + '.'} See '{exc.ctx.command_path} --help'."
    say(f"Error: {message}", err=True)
    return 1


def report_abort(exc: click.Abort) -> int:
    # click turns Ctrl-C into Abort; it is still an interruption, with the shell's code for it.
    if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
        return report_interrupted()
    click.echo("Aborted.", err=True)
    return 1


def report_interrupted() -> int:
    if not _interruptions.reported:  # said once, however many Ctrl-Cs came
        click.echo("Interrupted.", err=True)
        _interruptions.reported = True
    return 130  # 128 + SIGINT, as a shell reports it


def report_manifest_errors(exc: ManifestErrors) -> None:
    for error in exc.reported():
        report_error(error)
    if exc.unreported():
        click.echo(f"Error: ... and {exc.unreported()} more error(s) not shown; fix these and run again", err=True)


def report_internal_error(exc: Exception) -> None:
    import logging

    if logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("reconciler").exception("internal error")
    say(f"Error: internal error ({type(exc).__name__}: {exc}); please report it", err=True)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, terminate)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored (nohup)
        signal.signal(signal.SIGINT, interrupt)
    try:
        code = run(sys.argv[1:])
    except KeyboardInterrupt:  # raised where `run` does not catch it: between its handlers, say
        code = report_interrupted()
    # Only the interpreter's exit is left: a Ctrl-C now (a double press, say) would end the process by the
    # signal, not with the code and line above.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
