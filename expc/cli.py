"""The ``expc`` command line.

Exit codes (a contract CI relies on): 0 success; 1 a spec is invalid or a check
failed; 2 usage error; 3 the run could not finish. Commands that only read
specs (validate, compile, plan, schema, init, sql) import neither litellm, scipy nor
numpy, so they start fast.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

# pydantic looks for plugins in every installed package's metadata at start-up; expc uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from expc.compiler.diagnostics import FORMATTERS, Diagnostic, format_text
from expc.compiler.errors import EXIT_INVALID, EXIT_RUN, ExpcError
from expc.compiler.loader import Document
from expc.compiler.model import Spec
from expc.compiler.pipeline import check_file
from expc.compiler.plan import Plan
from expc.compiler.textsafe import json_safe, terminal_safe
from expc.runtime.files import OutputError, write_atomic

EXIT_OK = 0
SPEC_SUFFIXES = (".yaml", ".yml")


def _expand(paths: tuple[str, ...]) -> list[Path]:
    """Files, folders (every .yaml/.yml below, hidden folders skipped) and globs -> spec files."""
    found: list[Path] = []
    for raw in paths:
        matches = sorted(glob.glob(raw, recursive=True)) if glob.has_magic(raw) else [raw]
        if not matches:
            _fail(f"no file matches {raw!r}")
        for match in matches:
            p = Path(match)
            if p.is_dir():
                found.extend(
                    sorted(
                        f for f in p.rglob("*")
                        if f.suffix in SPEC_SUFFIXES and f.is_file()
                        and not any(part.startswith(".") for part in f.relative_to(p).parts)
                    )
                )
            else:
                found.append(p)  # a missing file is reported as E001 like any unreadable spec
    if not found:
        _fail(f"no spec files (*.yaml, *.yml) found in {', '.join(paths)}")
    return list(dict.fromkeys(found))


def _checked_spec(spec: str) -> tuple[Document, Spec]:
    """Check one spec, printing its findings to stderr: its (document, spec), or exit 1 on errors."""
    result = check_file(spec)  # a missing file is E001, exit 1
    if result.diagnostics:
        click.echo(format_text(result.diagnostics), err=True)
    if not result.ok():
        _summary(result.diagnostics, 1, err=True)
        sys.exit(EXIT_INVALID)
    assert result.doc is not None and result.spec is not None  # a spec without errors is loaded and typed
    return result.doc, result.spec


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Leave with one line saying what is wrong and ``code`` (1: an input is missing or bad), through the handler."""
    raise ExpcError(message, code)


def _summary(diagnostics: list[Diagnostic], files: int, err: bool = False) -> None:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    click.echo(f"{files} {noun} checked: {errors} error{'s' * (errors != 1)}, "
               f"{warnings} warning{'s' * (warnings != 1)}", err=err)


def _say(text: str, err: bool = False, nl: bool = True) -> None:
    """Print text for a person, escaped: nothing from a spec, a file name or a provider controls the terminal."""
    click.echo(terminal_safe(text, multiline=True), err=err, nl=nl)


def _write_output(path: Path, text: str) -> None:
    """Write a file the user named (its folders created), or say in one line why not and exit 1.

    A device, FIFO or terminal (``/dev/stdout``) is written into, never
    replaced; a link to a file, /proc and /sys are refused (expc.runtime.files).
    """
    write_atomic(path, text, parents=True)


def _emit(text: str, output: str | None) -> None:
    """Write a command's JSON document to ``output`` (atomically) or to stdout (terminal controls escaped)."""
    if output:
        _write_output(Path(output), text)
        _say(f"wrote {output}", err=True)
    else:
        click.echo(json_safe(text), nl=False)


class _Reported(click.ClickException):
    """An :class:`~expc.compiler.errors.ExpcError` on its way out: one escaped line on stderr, its exit code."""

    def __init__(self, error: ExpcError) -> None:
        super().__init__(str(error))
        setattr(self, "exit_code", error.exit_code)  # noqa: B010 (click declares it a class variable; it is per error)

    def show(self, file: object = None) -> None:
        """``error: <message>`` on one line, terminal controls escaped."""
        _say(f"error: {_one_line(self.message)}", err=True)


class _Group(click.Group):
    """The command group, and the one place where errors become a line and an exit code.

    Every error expc reports derives from ExpcError (its exit code with it);
    click's own usage errors (which quote paths and options) are escaped too.
    """

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; an ExpcError leaves as one escaped line with its exit code."""
        try:
            return super().invoke(ctx)
        except ExpcError as exc:
            raise _Reported(exc) from None
        except click.ClickException as exc:
            setattr(exc, "message", terminal_safe(exc.message))  # noqa: B010 (typed Final in click; show() reads it)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="expc", prog_name="expc")
def main() -> None:
    """expc: experiments on LLM-generated content, as code.

    Write an experiment as a YAML spec, validate it in CI, and compile it
    into a plan that the runtime assigns, generates and evaluates from.
    """


@main.command(epilog="""\b
Examples:
  expc validate specs/welcome-email.yaml
  expc validate specs/ --format github
  expc validate 'experiments/**/*.yaml' --strict --format json
""")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True,
              help="text for people, json for tools, github for GitHub Actions annotations.")
@click.option("--strict", is_flag=True, help="Treat warnings as failures (exit 1).")
@click.option("--min-power", "min_power", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="RATE",
              help="Gate: exit 1 when a spec's analytic power at its primary MDE is below RATE (W021) "
                   "or cannot be computed (W002).")
def validate(paths: tuple[str, ...], fmt: str, strict: bool, min_power: float | None) -> None:
    """Check specs: structure, references, conditions, templates, design.

    PATHS are files, folders (every .yaml/.yml file below them) or globs.
    Exits 0 when every spec is valid, 1 when any has an error (or a warning,
    with --strict, or a W021/W002 with --min-power), 2 on a usage error.
    """
    from expc.compiler.checks import with_min_power

    files = _expand(paths)
    diagnostics: list[Diagnostic] = []
    failed = False
    for f in files:
        result = check_file(f, str(f))
        if min_power is not None and result.doc is not None and result.spec is not None:
            result.diagnostics = with_min_power(result.doc, result.spec, result.diagnostics, min_power)
            failed |= any(d.code in ("W002", "W021") for d in result.diagnostics)
        diagnostics.extend(result.diagnostics)
        failed |= not result.ok(strict)
    if diagnostics or fmt == "json":
        click.echo(FORMATTERS[fmt](diagnostics))
    if fmt == "text":
        _summary(diagnostics, len(files))
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@main.command(name="compile", epilog="""\b
Examples:
  expc compile specs/welcome-email.yaml
  expc compile specs/welcome-email.yaml -o build/welcome.plan.json
""")
@click.argument("spec")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan here (default: stdout).")
def compile_command(spec: str, output: str | None) -> None:
    """Compile a spec into its plan (JSON).

    The plan has every default resolved, bucket ranges, the hashing seed,
    the planned sample size and the generation jobs. The same spec always
    compiles to byte-identical JSON.
    """
    from expc.compiler.compile import compile_plan, plan_json

    _emit(plan_json(compile_plan(*_checked_spec(spec))), output)


@main.command(epilog="""\b
Examples:
  expc plan specs/welcome-email.yaml
""")
@click.argument("spec")
def plan(spec: str) -> None:
    """Show what a spec would do, without running anything (a dry run).

    Audience, variants and weights, prompts and models, metrics, required
    units per variant, estimated days and generation jobs. No network.
    """
    from expc.compiler.compile import compile_plan
    from expc.plan_summary import summarise

    _say(summarise(compile_plan(*_checked_spec(spec))))


@main.command(epilog="""\b
Examples:
  expc schema > schemas/expc-spec.schema.json
  expc schema --plan > schemas/expc-plan.schema.json
""")
@click.option("--plan", "of_plan", is_flag=True, help="The schema of a compiled plan (2020-12) instead of the spec's.")
def schema(of_plan: bool) -> None:
    """Print the JSON Schema of the spec (draft-07, for editors and CI), or of a compiled plan."""
    if of_plan:
        from expc.compiler.plan import plan_schema_json

        click.echo(plan_schema_json(), nl=False)
        return
    from expc.compiler.schema import schema_json

    click.echo(schema_json(), nl=False)


@main.command(epilog="""\b
Examples:
  expc init                      # writes experiment.yaml
  expc init specs/new-test.yaml
""")
@click.argument("path", default="experiment.yaml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter spec that validates as it is."""
    from importlib.resources import files

    from expc.compiler.schema import SCHEMA_FILE, SCHEMA_ID

    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{path} already exists (use --force to overwrite it)")
    # Point editors at the repository's committed schema when there is one, else at its published id.
    local = Path(SCHEMA_FILE)
    schema_ref = os.path.relpath(local.resolve(), target.parent.resolve()) if local.exists() else SCHEMA_ID
    text = files("expc").joinpath("starter.yaml").read_text(encoding="utf-8")
    _write_output(target, text.replace("{schema}", schema_ref.replace(os.sep, "/"), 1))
    _say(f"wrote {path}; next: expc validate {path} && expc plan {path}")
    if not local.exists():
        click.echo(f"tip: to let editors check specs offline, run `mkdir -p schemas && expc schema > {SCHEMA_FILE}` "
                   "at the repository root and run `expc init` from there", err=True)


@main.command(name="assign", epilog="""\b
Examples:
  expc assign specs/welcome-email.yaml --units users.parquet -o assignments.parquet
  expc assign specs/welcome-email.yaml --units users.csv > assignments.csv
  expc assign specs/welcome-email.yaml --units users/ --engine spark -o assignments.parquet/
""")
@click.argument("spec")
@click.option("--units", "units_path", required=True, type=click.Path(),
              help="Units to assign: .csv, .jsonl or .parquet, with the declared attributes as columns "
                   "(with --engine spark, a folder of such files too).")
@click.option("-o", "--output", type=click.Path(),
              help="Write assignments here; the extension picks the format (default: CSV on stdout). With "
                   "--engine spark, a path ending in / (assignments.parquet/) is a folder Spark writes in parallel.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where to assign: the embedded engine, or Apache Spark (EXPC_SPARK_MASTER, EXPC_SPARK_REMOTE, "
                   "EXPC_SPARK_CONF say where; default local[*]), in parallel partitions.")
def assign_command(spec: str, units_path: str, output: str | None, engine: str) -> None:
    """Assign units to variants exactly as GrowthBook's SDKs would.

    Each input unit gets one output row: its id, `variant` (empty when it is
    not in the experiment) and `bucket` (its hash in [0, 1)). The audience,
    coverage and layer decide who is in; a summary of who went where and why
    goes to stderr. Units must appear once: duplicate or empty ids are refused.
    """
    from expc.compiler.compile import compile_plan
    from expc.runtime.assign import assign_file
    from expc.runtime.tables import DataError, render_assignments, write_assignment_chunks

    def to_stdout(tables) -> None:  # the whole file is checked before the first chunk comes
        tty = sys.stdout.isatty()
        for data in render_assignments(tables, "csv"):
            text = data.decode("utf-8")
            sys.stdout.write(terminal_safe(text, multiline=True) if tty else text)

    if engine == "duckdb" and os.path.isdir(units_path):
        raise click.BadParameter(f"{units_path!r} is a folder; the embedded engine reads one file "
                                 "(--engine spark reads a folder of files)", param_hint="'--units'")
    if output and os.path.isdir(output) and not (engine == "spark" and output.endswith(("/", os.sep))):
        raise click.BadParameter(f"{output!r} is a folder; name a file (or, with --engine spark, a new folder "
                                 "ending in /)", param_hint="'-o'")
    plan = compile_plan(*_checked_spec(spec))
    write = (lambda tables: write_assignment_chunks(output, tables)) if output else to_stdout
    try:  # chunk by chunk: the memory needed does not grow with the file
        if engine == "spark":
            from expc.runtime.assign_spark import assign_spark, folder_output

            if output and folder_output(output):
                counts = assign_spark(plan, units_path, folder=output)
            else:
                counts = assign_spark(plan, units_path, write)
        else:
            counts = assign_file(plan, units_path, write)
    except DataError as exc:
        _say(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    in_experiment = sum(counts["assigned"].values())
    _say(f"{counts['units']:,} units read from {units_path}; {in_experiment:,} assigned", err=True)
    for variant, count in counts["assigned"].items():
        _say(f"  {variant}: {count:,}", err=True)
    for reason, count in counts["excluded"].items():
        if count:
            click.echo(f"  excluded, {reason}: {count:,}", err=True)
    if output:
        _say(f"wrote {output}", err=True)


@main.command(epilog="""\b
Examples:
  expc generate specs/welcome-email.yaml --offline --quiet -o content.jsonl
  expc export specs/welcome-email.yaml --to growthbook --offline -o features.json   # the copy generated above
  expc export specs/welcome-email.yaml --to growthbook --values variant            # the assignment alone
""")
@click.argument("spec")
@click.option("--to", "target", type=click.Choice(["growthbook"]), required=True, help="The system to export to.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
@click.option("--values", type=click.Choice(["copy", "variant"]), default="copy", show_default=True,
              help="copy: each variation serves the tested copy (from the content store); variant: the variant "
                   "ids (the assignment alone).")
@click.option("--units", "units_path", type=click.Path(dir_okay=False),
              help="The units the copy was generated for (segments come from them).")
@click.option("--offline", is_flag=True, help="The copy was generated with --offline.")
@click.option("--model", callback=lambda ctx, param, value: _setting("model", _model_id)(ctx, param, value),
              help="The copy was generated with this --model (default: as for generate, docs/settings.md).")
@click.option("--api-base", "api_base", metavar="URL",
              callback=lambda ctx, param, value: _setting("api_base")(ctx, param, value),
              help="The copy was generated with this --api-base (default: as for generate).")
@click.option("--seed", type=int, default=0, show_default=True, help="The copy was generated with this --seed.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="The content store (default: .expc/runs/<experiment-id>/content.sqlite).")
def export(spec: str, target: str, output: str | None, values: str, units_path: str | None, offline: bool,
           model: str | None, api_base: str | None, seed: int, store_path: str | None) -> None:
    """Export a spec's assignment and its tested copy to another system.

    --to growthbook writes a GrowthBook features payload: one feature whose
    experiment rule has the spec's seed, hash version, weights, coverage,
    audience and layer, so that GrowthBook's SDKs assign every user exactly
    as `expc assign` does, and whose variations are the copy expc generated
    (read from the content store, no call made: run `expc generate` first).
    Copy per segment is one rule per segment; copy per unit exports a lookup
    key, with a warning. Exits 1 when the copy is not in the store.
    """
    from expc.compiler.compile import compile_plan
    from expc.runtime.export import growthbook_export, payload_json

    plan = compile_plan(*_checked_spec(spec))
    items = None
    if values == "copy":
        from expc.approve import stored_items
        from expc.runtime.generate.jobs import per_unit_variants
        from expc.runtime.generate.runner import GenerateOptions, NotInStore
        from expc.runtime.run import STORE_NAME, default_run_dir
        from expc.runtime.tables import read_units
        from expc.settings import runs_root

        units = read_units(units_path, plan.attributes, plan.assignment.unit) if units_path else None
        store = Path(store_path) if store_path else default_run_dir(plan, runs_root()) / STORE_NAME
        wanted = tuple(v.id for v in plan.variants if v.id not in per_unit_variants(plan))  # per unit: a key
        try:
            items = stored_items(plan, units, store, GenerateOptions(offline=offline, model=model, api_base=api_base,
                                                                     seed=seed, variants=wanted))
        except NotInStore as exc:
            _fail(f"{exc}; or export the assignment alone (--values variant)")
    weights = None
    if plan.analysis.method == "bandit":  # the weights its run's last look chose (runtime/export.py)
        from expc.runtime.bandit import current_weights
        from expc.runtime.run import default_run_dir
        from expc.settings import runs_root

        weights = current_weights(plan, default_run_dir(plan, runs_root()))
    exported = growthbook_export(plan, items, weights)
    for warning in exported.warnings:
        _say(f"warning: {warning}", err=True)
    _emit(payload_json(exported.payload), output)


def _engine_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--engine: where exposures and events are reduced (a name in the engines' registry)."""
    from expc.runtime.engines import ENGINES

    return click.option("--engine", type=click.Choice(sorted(ENGINES)), default="duckdb", show_default=True,
                        help="Where the data is reduced: duckdb (embedded) or spark (PySpark: local[*], or "
                             "EXPC_SPARK_MASTER / EXPC_SPARK_REMOTE); see docs/warehouse.md.")(command)


def _as_of_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--as-of must be an ISO 8601 date or time (a usage error, exit 2, otherwise)."""
    from datetime import datetime

    if value is None:
        return None
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a timestamp; write it as ISO 8601, "
                                 "such as 2026-11-28 or 2026-11-28T00:00:00Z") from None
    return value.strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


_DIALECTS = ("duckdb", "spark", "databricks", "trino", "bigquery", "snowflake", "postgres", "redshift", "clickhouse")


@main.command("sql", epilog="""\b
Examples:
  expc sql specs/welcome-email.yaml --dialect bigquery
  expc sql specs/welcome-email.yaml --dialect spark --as-of 2026-11-28T00:00:00Z > reduction.sql
""")
@click.argument("spec")
@click.option("--dialect", required=True, type=click.Choice(_DIALECTS),
              help="The SQL dialect of the engine that will run the query.")
@click.option("--as-of", "as_of", callback=_as_of_option, metavar="TIMESTAMP",
              help="Count only rows at or before this ISO 8601 time (default: all the data).")
def sql_command(spec: str, dialect: str, as_of: str | None) -> None:
    """Print the reduction of `expc analyze` (the same sums and counts) as one commented SQL query for a warehouse.

    The query reads two relations, `exposures(unit_id, variant, timestamp)`
    and `events(unit_id, event, timestamp, value)`, and returns one row per
    variant: exposed units, every metric's sums and the exclusion counts.
    Only those aggregates leave the warehouse. Nothing is run or connected.
    """
    from expc.compiler.compile import compile_plan
    from expc.runtime.stats.reduction_sql import reduction_sql

    plan = compile_plan(*_checked_spec(spec))
    try:
        text = reduction_sql(plan, dialect, as_of)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--as-of'") from None
    _say(text, nl=False)


@main.command(epilog="""\b
Examples:
  expc analyze specs/welcome-email.yaml --exposures exposures.parquet --events events.parquet
  expc analyze specs/welcome-email.yaml --exposures exposures.csv --events events.csv \\
      --as-of 2026-11-28T00:00:00Z --format md > comment.md
  expc analyze specs/welcome-email.yaml --exposures e.jsonl --events ev.jsonl --format json
""")
@click.argument("spec")
@click.option("--exposures", "exposures_path", type=click.Path(),
              help="Exposures: .csv, .jsonl or .parquet (or a folder of them) with the unit id, `variant` and "
                   "`timestamp` (default: the spec's data.exposures).")
@click.option("--events", "events_path", type=click.Path(),
              help="Events: .csv, .jsonl or .parquet (or a folder of them) with the unit id, `event`, `timestamp` "
                   "(and `value`) (default: the spec's data.events).")
@click.option("--units", "units_path", type=click.Path(),
              help="Units: a file with the unit id and attributes; the segment attributes of analysis.segments "
                   "are read from it, joined by unit id (default: the exposures' columns).")
@click.option("--as-of", "as_of", callback=_as_of_option, metavar="TIMESTAMP",
              help="Count only rows at or before this ISO 8601 time (default: all the data).")
@_engine_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text", show_default=True,
              help="text for people, json for tools, md for a pull-request comment.")
def analyze(spec: str, exposures_path: str | None, events_path: str | None, units_path: str | None,
            as_of: str | None, engine: str, fmt: str) -> None:
    """Analyse an experiment from its exposures and events: results and the stopping decision.

    Reduces the files to per-variant counts, compares every treatment with the
    control on every metric, checks the sample ratio and applies the spec's
    stopping rules. The report goes to stdout; --format json gives the stable
    shape for tools. Exits 0 whatever the decision; 1 when the spec is invalid
    or a file is bad (one line naming it); 2 on a usage error, such as an
    --as-of that is not a timestamp. The look is numbered by the spec's look
    schedule, as `expc run` numbers its looks: the first scheduled look at or
    after the time from the first exposure to --as-of (or to the latest first
    exposure), never past max_days.
    """
    import json

    from expc.analysis_report import analysis_report
    from expc.api import analyze as analyze_data
    from expc.compiler.compile import compile_plan

    plan = compile_plan(*_checked_spec(spec))
    try:
        result = analyze_data(plan, exposures=exposures_path, events=events_path, as_of=as_of, engine=engine,
                              base=Path(spec).parent, units=units_path).to_dict()
    except ExpcError:
        raise
    except ValueError as exc:
        if str(exc).startswith("as_of"):  # reduce's own check, stricter or looser than ours
            raise click.BadParameter(str(exc), param_hint="'--as-of'") from None
        raise
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, allow_nan=False))
    elif fmt == "md":
        from expc.runtime.report.markdown import render_markdown

        _say(render_markdown(analysis_report(plan, result)), nl=False)
    else:
        from expc.runtime.report.terminal import print_summary

        print_summary(analysis_report(plan, result))


def _model_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--model: a model id whose provider litellm knows (checked without importing litellm), and no URL."""
    from expc.settings import model_problem

    problem = None if value is None else model_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def _setting(key: str, check: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """An option's callback: the flag's value (checked), else EXPC_<KEY>, else the settings file's (expc.settings)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if check is not None:
            value = check(ctx, param, value)
        if value is not None:
            return value
        from expc.settings import env_default, load_settings

        def settings() -> Any:
            if "expc.settings" not in ctx.meta:
                ctx.meta["expc.settings"] = load_settings()
            return ctx.meta["expc.settings"]

        return env_default(key, settings)

    return callback


def _env_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--env-file: its variables join this process's environment (those already set win), before other options."""
    if value is not None:
        from expc.settings import load_env_file

        load_env_file(value)


def _env_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--api-key-env: the name of an environment variable (never a key)."""
    import re

    if value is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise click.BadParameter("give the name of an environment variable (A-Z, 0-9, _), never the key itself")
    return value


def _generation_options(command):
    """The options that steer model calls, shared by `expc generate` and `expc run`."""
    options = [
        click.option("--offline", is_flag=True,
                     help="Send every prompt to the built-in offline model (no key, no network)."),
        click.option("--env-file", "env_file", metavar="PATH", callback=_env_file, expose_value=False, is_eager=True,
                     help="Read provider keys from this dotenv file into this process only (variables already "
                          "set win; nothing is written). See docs/settings.md."),
        click.option("--model", callback=_setting("model", _model_id),
                     help="Use this litellm model id for every prompt (e.g. openai/gpt-4o-mini)."),
        click.option("--api-base", "api_base", metavar="URL", callback=_setting("api_base"),
                     help="Send every call to this OpenAI-compatible server (a local model server, a LiteLLM "
                          "proxy); wins over any api_base in the spec."),
        click.option("--api-key-env", "api_key_env", metavar="NAME", callback=_env_name,
                     help="Read every prompt's API key from this environment variable (its name, never the key); "
                          "wins over any api_key_env in the spec."),
        click.option("--concurrency", type=click.IntRange(1, 1024), callback=_setting("concurrency"),
                     help="Model calls in flight at once (default: EXPC_CONCURRENCY, the settings file's, "
                          "the spec's, 8)."),
        click.option("--max-cost", "max_cost", type=click.FloatRange(min=0), metavar="USD",
                     callback=_setting("max_cost"),
                     help="No new call starts once this much has been spent (default: EXPC_MAX_COST, the "
                          "settings file's, the spec's cap)."),
        click.option("--batch-wait", "batch_wait", type=click.FloatRange(min=0), metavar="SECONDS",
                     default=86400.0, show_default=True,
                     help="In batch mode (--batch, or the spec's generation.batch): poll this long at most, then "
                          "exit 3 (a re-run collects)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load_plan(source: str) -> Plan:
    """A compiled plan (``.json``, from ``expc compile``) read back and validated, or a spec checked and compiled."""
    from expc.compiler.compile import compile_plan
    from expc.compiler.plan import Plan
    from expc.compiler.sources import read_regular

    if not source.endswith(".json"):
        return compile_plan(*_checked_spec(source))
    try:  # a regular file only (a FIFO would hang the read, /dev/zero fill the memory), 16 MiB at most
        text = read_regular(source, 16 << 20)
    except FileNotFoundError:
        _fail(f"{source}: no such file")
    except OSError as exc:
        _fail(f"{source}: not a readable compiled plan ({exc})")
    return Plan.from_json(text, source)  # PlanError: one line, exit 1


def _lock_of(spec: str) -> Path:
    """The approvals lock beside a spec or plan file (``expc run --require-approval``)."""
    from expc.runtime.approvals import lock_path

    return lock_path(spec)


@main.command(name="run", epilog="""\b
Examples:
  expc run specs/welcome-email.yaml                    # simulated, offline
  expc run specs/welcome-email.yaml --seed 7 --fresh   # another simulated world
  expc run specs/welcome-email.yaml --units users.parquet \\
      --exposures exposures.parquet --events events.parquet --model openai/gpt-4o-mini
  expc run plan.json --format json > report.json
""")
@click.argument("spec")
@click.option("--units", "units_path", type=click.Path(dir_okay=False),
              help="Real units to assign and generate for (.csv, .jsonl, .parquet).")
@click.option("--events", "events_path", type=click.Path(dir_okay=False),
              help="Real events (.csv, .jsonl, .parquet): unit id, `event`, `timestamp`, optional `value`.")
@click.option("--exposures", "exposures_path", type=click.Path(dir_okay=False),
              help="Exposures logged elsewhere (e.g. by a GrowthBook SDK): unit id, `variant`, `timestamp`.")
@click.option("--simulate", is_flag=True,
              help="Draw units and outcomes from the spec's simulation block (the default without data).")
@click.option("--seed", type=int, help="Seed of a simulated run (default: the simulation block's seed).")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False),
              help="Where the run's state and reports live (default: <run_dir_root>/<experiment-id>, "
                   ".expc/runs/<experiment-id> unless EXPC_RUN_DIR_ROOT or the settings file say otherwise).")
@click.option("--fresh", is_flag=True, help="Start over in the run directory (the content store is kept).")
@_engine_option
@_generation_options
@click.option("--quiet", is_flag=True, help="No progress, only the summary (or the JSON).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a summary for people; json: the report on stdout.")
@click.option("--require-approval", "require_approval", is_flag=True,
              help="Refuse (exit 1) content whose hash <spec-stem>.approved.yaml does not approve (expc approve).")
def run_command(spec: str, units_path: str | None, events_path: str | None, exposures_path: str | None,
                simulate: bool, seed: int | None, run_dir: str | None, fresh: bool, engine: str, offline: bool,
                model: str | None, api_base: str | None, api_key_env: str | None, concurrency: int | None,
                max_cost: float | None, batch_wait: float,
                quiet: bool, fmt: str, require_approval: bool) -> None:
    """Run an experiment end to end: assign, generate, gather outcomes, evaluate every look, report.

    With no data files and a `simulation` block in the spec, the run is
    simulated: units and outcomes are drawn from the spec's truth, and every
    output says SIMULATED. State lives in the run directory; running the same
    command again resumes where it stopped (nothing is generated or paid for
    twice). Writes report.json, report.md and report.html there. Exits 0
    whatever the decision; 1 for an invalid spec or bad data; 2 for a usage
    error; 3 when the run cannot finish (provider outage, budget reached,
    missing credentials): run it again to resume.
    """
    from expc.run_progress import progress_for
    from expc.runtime.generate.batch import Polling
    from expc.runtime.generate.runner import GenerateOptions
    from expc.runtime.report.terminal import print_summary
    from expc.runtime.report.write import report_json
    from expc.runtime.run import RunOptions, default_run_dir, execute
    from expc.settings import runs_root

    plan = _load_plan(spec)
    directory = Path(run_dir) if run_dir else default_run_dir(plan, runs_root())
    options = RunOptions(
        run_dir=directory,
        simulate=simulate, seed=seed,
        units_path=Path(units_path) if units_path else None,
        events_path=Path(events_path) if events_path else None,
        exposures_path=Path(exposures_path) if exposures_path else None,
        fresh=fresh, engine=engine, data_base=Path(spec).parent,
        generation=GenerateOptions(offline=offline, model=model, api_base=api_base, api_key_env=api_key_env,
                                   concurrency=concurrency, max_cost=max_cost,
                                   batch_polling=Polling(max_wait=batch_wait)),
        approvals=_lock_of(spec) if require_approval else None,
    )
    try:
        with progress_for(quiet or fmt == "json") as progress:
            result = execute(plan, options, progress)
    except OutputError as exc:
        raise ExpcError(f"{exc}; what the run saved in {options.run_dir} stays valid: fix this and run the "
                        "same command again to resume", exc.exit_code) from None
    except KeyboardInterrupt:
        _fail(f"interrupted: the run's state is saved in {options.run_dir}; run the same command again to resume "
              "(nothing done is lost or paid for twice)", EXIT_RUN)
    if fmt == "json":
        click.echo(json_safe(report_json(result.report)), nl=False)
    else:
        print_summary(result.report, result.outputs)


@main.command(name="simulate", epilog="""\b
Examples:
  expc simulate specs/welcome-email.yaml --replications 1000 --truth aa   # false-positive rate
  expc simulate specs/welcome-email.yaml --replications 1000              # power under the spec's truth
  expc simulate specs/push-notification.yaml -n 2000 --seed 1 --format json
""")
@click.argument("spec")
@click.option("-n", "--replications", type=click.IntRange(min=1, max=1_000_000), default=1000, show_default=True,
              help="Number of simulated experiments.")
@click.option("--truth", type=click.Choice(["spec", "aa"]), default="spec", show_default=True,
              help="spec: the simulation block's true values (power); aa: every variant equals the control "
                   "(false-positive rate).")
@click.option("--seed", type=int, default=None, help="Random seed (default: simulation.seed of the spec).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for tools.")
@click.option("--max-fpr", "max_fpr", type=click.FloatRange(0, 1), metavar="RATE",
              help="Gate: exit 1 when the A/A false-positive rate is above RATE (simulated as well if needed).")
@click.option("--min-power", "min_power", type=click.FloatRange(0, 1), metavar="RATE",
              help="Gate: exit 1 when the power under the spec's truth is below RATE (simulated as well if needed).")
def simulate_command(spec: str, replications: int, truth: str, seed: int | None, fmt: str,
                     max_fpr: float | None, min_power: float | None) -> None:
    """Operating characteristics of a design before launch, from its simulation block.

    Simulates many experiments at once (traffic per look, outcomes from the
    true rates or means, every look evaluated and the stopping rules applied)
    and reports the false-positive rate (--truth aa) or the power (--truth
    spec), with the distributions of decisions, stopping day and units used.
    With --max-fpr or --min-power it is a CI gate (docs/ci.md, "Design gates").
    Exits 1 when the spec is invalid, has no simulation block, or misses a gate.
    """
    import json

    from expc.runtime.simulate import simulate
    from expc.simulate_gates import evaluate_gates, failed
    from expc.simulate_report import highlight, render_text

    plan = _load_plan(spec)
    result = simulate(plan, replications, truth=truth, seed=seed).to_dict()
    gates = evaluate_gates(plan, result, max_fpr, min_power)
    if gates:
        result["gates"] = {name: gate.to_dict() for name, gate in gates.items()}
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        click.echo(highlight(terminal_safe(render_text(result), multiline=True)), nl=False)
    if failed(gates):
        sys.exit(EXIT_INVALID)


@main.command(name="generate", epilog="""\b
Examples:
  expc generate specs/welcome-email.yaml --offline -o content.jsonl
  expc generate specs/welcome-email.yaml --units users.parquet --model openai/gpt-4o-mini --max-cost 2
  expc generate specs/welcome-email.yaml --api-base http://localhost:11434/v1 --model openai/llama3.2
  expc generate specs/welcome-email.yaml --offline --format md -o review.md   # a sheet for the pull request
""")
@click.argument("spec")
@click.option("--units", "units_path", type=click.Path(dir_okay=False),
              help="Units (.csv, .jsonl, .parquet): needed for per-unit content; segments come from them too.")
@_generation_options
@click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Per-call timeout (default: the spec's, 60 s).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Base seed of the requests (a new seed, new candidates).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="The content store (default: .expc/runs/<experiment-id>/content.sqlite).")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False),
              help="Write the items as JSON Lines here (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "md", "html"]), default="jsonl", show_default=True,
              help="jsonl: every item; md / html: a review sheet (copy, checks, model, cost, content hash) for "
                   "a pull request, to approve with `expc approve`.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@click.option("--batch/--no-batch", "batch", default=None,
              help="Submit the calls through the provider's batch API (about half the price; default: the spec's "
                   "generation.batch). See docs/generation.md, Batch mode.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes making the calls (use more than one core when the calls are CPU-bound; "
                   "--concurrency is shared among them).")
def generate_command(spec: str, units_path: str | None, offline: bool, model: str | None, api_base: str | None,
                     api_key_env: str | None,
                     concurrency: int | None, max_cost: float | None, timeout: float | None, seed: int,
                     store_path: str | None, out: str | None, fmt: str, quiet: bool, batch: bool | None = None,
                     batch_wait: float = 86400.0, workers: int = 1) -> None:
    """Generate every variant's content through litellm, checked, stored and budgeted.

    Writes one JSON line per item: variant, segment or unit, content, model,
    cost, status. Every completed call is kept in the content store, so a
    second run makes no call and an interrupted run resumes where it stopped.
    Exits 0 when done; 1 for an invalid spec or units (or per-unit content
    without --units); 3 when the run cannot finish (missing credentials,
    provider failure, budget reached, content that fails its checks with
    `on_fail: error`): run it again to resume.
    """
    from expc.compiler.compile import compile_plan
    from expc.generate_report import variant_table
    from expc.run_progress import progress_for
    from expc.runtime.generate.batch import Polling
    from expc.runtime.generate.runner import GenerateOptions, GenerationError, generate
    from expc.runtime.run import STORE_NAME, default_run_dir
    from expc.runtime.tables import read_units
    from expc.settings import runs_root

    plan = compile_plan(*_checked_spec(spec))
    units = read_units(units_path, plan.attributes, plan.assignment.unit) if units_path else None
    store = Path(store_path) if store_path else default_run_dir(plan, runs_root()) / STORE_NAME
    opts = GenerateOptions(offline=offline, model=model, api_base=api_base, api_key_env=api_key_env,
                           concurrency=concurrency, max_cost=max_cost, timeout=timeout, seed=seed, batch=batch,
                           batch_polling=Polling(max_wait=batch_wait), workers=workers)
    try:
        with progress_for(quiet) as progress:
            result = generate(plan, units, store, opts, progress.generation)
        for note in result.notes:
            _say(note, err=True)
    except GenerationError as exc:
        if exc.result is not None and not quiet:  # what was made before it stopped, then the error's line
            variant_table(exc.result.per_variant(), exc.result.spent, exc.result.per_deployment())
        raise
    except KeyboardInterrupt:
        _fail(f"interrupted: every completed call is kept in {store}; run the same command again to resume "
              "(no call is paid for twice)", EXIT_RUN)
    text = result.jsonl()
    if fmt != "jsonl":
        from expc.generate_report import review_html, review_markdown

        text = (review_markdown if fmt == "md" else review_html)(plan, result.items, spec)
    if out:
        _write_output(Path(out), text)
    else:
        click.echo(json_safe(text), nl=False)
    if not quiet:
        variant_table(result.per_variant(), result.spent, result.per_deployment())
        if out:
            _say(f"wrote {len(result.items):,} items to {out}", err=True)
    rejection = result.rejection()
    if rejection:
        _fail(rejection, EXIT_RUN)


@main.command(name="approve", epilog="""\b
Examples:
  expc generate specs/welcome-email.yaml --offline --format md -o review.md
  expc approve specs/welcome-email.yaml --offline --reviewer alice   # writes specs/welcome-email.approved.yaml
  expc approve specs/welcome-email.yaml --offline --reviewer alice --variant personalized
  expc approve specs/welcome-email.yaml --reviewer alice --run-dir .expc/runs/welcome-subject-2026q4
""")
@click.argument("spec")
@click.option("--reviewer", envvar="EXPC_REVIEWER", metavar="NAME",
              help="Who approves (default: the EXPC_REVIEWER environment variable).")
@click.option("--variant", "variants", multiple=True, metavar="ID", help="Approve only this variant (repeatable).")
@click.option("--units", "units_path", type=click.Path(dir_okay=False),
              help="The units the content was generated for (per-unit and per-segment content).")
@click.option("--offline", is_flag=True, help="The content was generated with --offline.")
@click.option("--model", callback=_setting("model", _model_id),
              help="The content was generated with this --model (default: as for generate, docs/settings.md).")
@click.option("--api-base", "api_base", metavar="URL", callback=_setting("api_base"),
              help="The content was generated with this --api-base (default: as for generate).")
@click.option("--seed", type=int, default=0, show_default=True, help="The content was generated with this --seed.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False),
              help="The content store (default: .expc/runs/<experiment-id>/content.sqlite).")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False),
              help="Approve what the run in this folder shows (its units, drawn again when simulated, and its "
                   "store) instead of --units and --store.")
def approve_command(spec: str, reviewer: str | None, variants: tuple[str, ...], units_path: str | None,
                    offline: bool, model: str | None, api_base: str | None, seed: int,
                    store_path: str | None, run_dir: str | None) -> None:
    """Approve the generated content: record its hashes in <spec-stem>.approved.yaml beside the spec.

    The content comes from the content store, as `expc generate` made it with
    the same options (no model is called): each text's SHA-256 is recorded
    with its variant, scope (all, a segment, any unit), the reviewer and the
    date. Commit the lock file; `expc run --require-approval` then refuses
    content it does not list. Exits 1 when content is missing from the store
    or the lock file in the way is not one of expc's.
    """
    from expc.approve import approve_spec
    from expc.compiler.compile import compile_plan
    from expc.runtime.generate.runner import GenerateOptions
    from expc.runtime.run import STORE_NAME, default_run_dir
    from expc.runtime.tables import read_units
    from expc.settings import runs_root

    if not reviewer:
        raise click.UsageError("say who approves: --reviewer NAME (or set EXPC_REVIEWER)")
    if run_dir and (units_path or store_path):
        raise click.UsageError("--run-dir approves the run's own units and store: leave out --units and --store")
    plan = compile_plan(*_checked_spec(spec))
    unknown = [v for v in variants if v not in {variant.id for variant in plan.variants}]
    if unknown:
        raise click.BadParameter(f"no variant `{unknown[0]}` in {spec}", param_hint="'--variant'")
    units = read_units(units_path, plan.attributes, plan.assignment.unit) if units_path else None
    store = Path(store_path) if store_path else default_run_dir(plan, runs_root()) / STORE_NAME
    opts = GenerateOptions(offline=offline, model=model, api_base=api_base, seed=seed)
    done = approve_spec(spec, plan, units, store, opts, reviewer, variants or None,
                        run_dir=Path(run_dir) if run_dir else None)
    _say(f"wrote {done.path}: {done.new:,} text(s) approved now, {done.kept:,} already approved")


@main.command(name="runs", epilog="""\b
Examples:
  expc runs
  expc runs --limit 10 --format json
  expc runs --run-dir-root /data/expc-runs
""")
@click.option("--run-dir-root", "root", type=click.Path(), metavar="DIR",
              help="The folder holding the run directories (default: EXPC_RUN_DIR_ROOT, the settings file's "
                   "run_dir_root, else .expc/runs).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="List at most this many entries, newest first.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for tools.")
def runs_command(root: str | None, limit: int, fmt: str) -> None:
    """List the run directories: experiment, mode, status, last look, decision, spend and age.

    Only reads: safe while a run works. A folder that is not a run (no state
    of expc, a link, a file) is listed as such. Exits 0; 1 when the root is
    not a folder that can be read.
    """
    import json
    import time

    from expc.runtime.runs import list_runs, render_text
    from expc.settings import runs_root

    listing = list_runs(runs_root(root), limit)
    if fmt == "json":
        click.echo(json_safe(json.dumps(listing.to_dict(time.time()), indent=2, allow_nan=False)))
    else:
        _say(render_text(listing), nl=False)


@main.command(name="open", epilog="""\b
Examples:
  expc open welcome-subject-2026q4
  expc open .expc/runs/welcome-subject-2026q4 --print
""")
@click.argument("run")
@click.option("--run-dir-root", "root", type=click.Path(), metavar="DIR",
              help="Where a run's name is looked up (default: as for `expc runs`).")
@click.option("--print", "print_only", is_flag=True, help="Only print the report's path; open nothing.")
def open_command(run: str, root: str | None, print_only: bool) -> None:
    """Open a run's report.html in the browser, or print its path where there is no browser.

    RUN is a run's name (as `expc runs` lists it) or the path of a run
    directory. Only a run's own report.html is opened, never a link. Exits 1
    when RUN is not a run or has no report yet.
    """
    from expc.runtime.runs import open_report, report_file, resolve_run
    from expc.settings import runs_root

    path = report_file(resolve_run(run, runs_root(root)))
    _say(str(path))
    if not print_only and open_report(path):
        _say("opened in your browser", err=True)


@main.command(name="diff", epilog="""\b
Examples:
  expc diff specs/welcome.yaml --against origin/main --format github
  expc diff old/welcome.yaml specs/welcome.yaml --format json
""")
@click.argument("specs", nargs=-1, required=True, metavar="[BASE] HEAD")
@click.option("--against", metavar="REV", help="Compare HEAD with itself at this git revision (origin/main).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="text for people, json for tools, github for GitHub Actions annotations.")
def diff_command(specs: tuple[str, ...], against: str | None, fmt: str) -> None:
    """What a change to a spec does: safe, re-randomises, changes the analysis or the content.

    Compares the compiled plans of BASE and HEAD (or of HEAD and HEAD at
    --against REV). Exits 1 when a change that re-randomises units, changes
    the analysis or changes the content touches a running experiment
    (`status: running`, or a run on real data in the runs folder, .expc/runs
    unless the settings' run_dir_root says otherwise), or when a side does not
    compile; 0 otherwise; 2 on a usage error.
    """
    from expc.diff_command import compare, render
    from expc.settings import runs_root

    if len(specs) != (1 if against else 2):
        raise click.UsageError("give BASE and HEAD, or one spec and --against REV")
    result = compare(specs[-1], None if against else specs[0], against, runs=runs_root())
    click.echo(render(result, fmt), nl=False)
    sys.exit(result.exit_code)


def entry() -> None:
    """Console entry point: runs the command line; an unexpected error is one readable line."""
    try:
        main()
    except Exception as exc:  # a bug: say so plainly; EXPC_DEBUG=1 shows the traceback
        if os.environ.get("EXPC_DEBUG"):
            raise
        _say(f"expc: internal error: {type(exc).__name__}: {exc}\n"
             "this is a bug in expc; rerun with EXPC_DEBUG=1 for details and report it", err=True)
        sys.exit(EXIT_RUN)


if __name__ == "__main__":  # pragma: no cover
    entry()
