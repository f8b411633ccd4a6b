"""Shared test helpers: a small valid spec, and a way to check YAML text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from expc.compiler.pipeline import CheckResult, check_bytes

if TYPE_CHECKING:
    from fakellm import FakeLLM

    from expc.compiler.plan import Plan

ROOT = Path(__file__).resolve().parent.parent

ACTIVATED = """\
metrics:
  - id: activated
    kind: proportion
    event: activated
    role: primary
    mde: 5%
    baseline: 0.1
"""
"""The metrics section of most small specs: one primary proportion, ``activated``."""

GREETING_TAIL = """\
variants:
  - id: control
    content: Hello!
  - id: treatment
    prompt: hello
    generate: {per: unit}
""" + ACTIVATED
"""The end of a spec whose prompt ``hello`` writes each unit a greeting: a static control, the generated treatment."""

CLICKED = """\
metrics:
  - id: clicked
    kind: proportion
    event: click
    role: primary
    mde: 5%
    baseline: 0.1
"""
"""The metrics section of the headline specs: one primary proportion, ``clicked``."""

CLICKED_IN_A_DAY = """\
metrics:
  - id: clicked
    kind: proportion
    event: clicked
    window: 1d
    role: primary
    mde: 20%
"""
"""The metrics section of the small run specs: one primary proportion, ``clicked`` within a day of exposure."""

BASE = """\
version: 1
experiment:
  id: demo
  unit: user_id
attributes:
  user_id: string
  first_name: string
  country: string
  plan: string
  interests: list[string]
  signup_days: integer
  score: number
  beta: boolean
  app_version: version
audiences:
  everyone_us:
    where:
      country: US
prompts:
  subject:
    model: offline/test
    template: |
      Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.
variants:
  - id: control
    content: Welcome!
  - id: treatment
    prompt: subject
    generate: {per: unit}
allocation:
  audience: everyone_us
""" + ACTIVATED

SIMULATED_ACTIVATION = """\
simulation:
  units_per_day: 1000
  truth:
    control: {activated: 0.1}
    treatment: {activated: 0.11}
"""
"""A simulation section for BASE: a treatment that lifts ``activated`` from 10% to 11%."""


def headline_candidates_spec(experiment: str, threshold: float, countries: str, units_per_day: int, days: int,
                             on_fail: str = "", weight: int | None = None) -> str:
    """A spec whose variant ``ai`` is four judged candidate headlines per country (offline models), the best two kept.

    ``threshold`` is the judge's, ``countries`` the simulated values (YAML flow: ``France, Germany``); the checks'
    ``on_fail`` and the variant's ``weight`` are written only when given.
    """
    on_fail_line = f"      on_fail: {on_fail}\n" if on_fail else ""
    weight_line = f"    weight: {weight}\n" if weight is not None else ""
    rubric = "'Accurate for {{ segment.country }}, no clickbait.'"
    return f"""\
version: 1
experiment:
  id: {experiment}
  unit: user_id
attributes:
  user_id: string
  country: string
prompts:
  headline:
    model: offline/writer
    template: Write a headline about {{{{ segment.country }}}} politics and weather.
    checks:
      judge: {{model: offline/judge, rubric: {rubric}, threshold: {threshold}}}
{on_fail_line}variants:
  - id: control
    content: Today's news.
  - id: ai
    prompt: headline
{weight_line}    generate: {{per: segment, segment_by: [country]}}
    candidates: 4
    top_k: 2
{CLICKED}simulation:
  units_per_day: {units_per_day}
  days: {days}
  attributes:
    country: {{values: [{countries}]}}
"""


def check_text(text: str, name: str = "spec.yaml") -> CheckResult:
    """Check YAML text (dedented) as if it were a file called ``name``."""
    return check_bytes(textwrap.dedent(text).encode("utf-8"), name)


def plan_of_text(text: str, name: str = "spec.yaml") -> Plan:
    """Check and compile YAML text (dedented) into its plan; the spec must have no error."""
    from expc.compiler.compile import compile_plan

    result = check_text(text, name)
    assert result.ok(), [str(d) for d in result.diagnostics]
    return compile_plan(result.doc, result.spec)


def edited(plan: Plan, edit: Callable[[dict[str, Any]], object]) -> Plan:
    """A copy of a plan with ``edit`` applied to its JSON form, validated again (plans are frozen)."""
    from expc.compiler.plan import Plan

    data = plan.to_dict()
    edit(data)
    return Plan.from_dict(data)


def codes(result: CheckResult) -> list[str]:
    """The codes of a result's findings, in order."""
    return [d.code for d in result.diagnostics]


def located(result: CheckResult, code: str) -> list[tuple[int, int]]:
    """(line, col) of each finding with ``code``."""
    return [(d.line, d.col) for d in result.diagnostics if d.code == code]


@pytest.fixture
def base() -> str:
    """A small valid spec that each test breaks in one place."""
    return BASE


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``OPENAI_API_KEY`` in the environment (a test that needs one sets it): use with ``usefixtures``."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    """One loopback OpenAI-compatible server (tests/fakellm.py) shared by a test module's tests."""
    from fakellm import FakeLLM

    with FakeLLM() as s:
        yield s


def with_traffic(plan: Plan, units_per_day: int) -> Plan:
    """The plan with another ``simulation.units_per_day`` (and the entering traffic that follows from it)."""
    share = plan.assignment.namespace.share if plan.assignment.namespace else 1.0
    entering = units_per_day * share * plan.assignment.coverage
    return edited(plan, lambda p: p["simulation"].update(units_per_day=units_per_day, entering_per_day=entering))


def static_run_spec(experiment: str, max_days: int, units_per_day: int) -> str:
    """A small simulated experiment with static content (no model call): for tests of a run's files."""
    return f"""\
version: 1
experiment:
  id: {experiment}
  unit: user_id
attributes:
  user_id: string
variants:
  - id: control
    content: Hello!
  - id: treatment
    content: Hi!
{CLICKED_IN_A_DAY}stopping:
  looks: daily
  max_days: {max_days}
  rules:
    - {{when: max_days, then: stop_inconclusive}}
simulation:
  units_per_day: {units_per_day}
  seed: 5
  truth:
    control: {{clicked: 0.1}}
"""


REQUIRE_SPARK_ENV = "EXPC_REQUIRE_SPARK"
"""Set to 1 (as `.ci/run` does) to make the Spark tests fail, rather than skip, where Spark cannot run."""


@pytest.fixture(scope="session")
def spark_engine() -> Any:
    """One Spark engine (local mode, one shared SparkSession) for the whole test session.

    Skips with a one-line reason where PySpark or Java is missing, unless
    ``EXPC_REQUIRE_SPARK=1``: then the test fails, so CI cannot pass with the Spark tests skipped.
    """
    import os

    from expc.runtime.engines import EngineError, open_engine

    try:
        engine = open_engine("spark")
    except EngineError as exc:
        if os.environ.get(REQUIRE_SPARK_ENV) == "1":
            pytest.fail(f"{REQUIRE_SPARK_ENV}=1 but Spark cannot run here: {exc}")
        pytest.skip(f"Spark cannot run here: {exc}")
    # The tests' data is tiny: one partition and no adaptive re-planning save seconds a query (not semantics).
    engine.spark.conf.set("spark.sql.shuffle.partitions", "1")
    engine.spark.conf.set("spark.sql.adaptive.enabled", "false")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def spark(spark_engine: Any) -> Any:
    """The shared SparkSession (see :func:`spark_engine`)."""
    return spark_engine.spark


@pytest.fixture(params=["duckdb", "spark"])
def engine(request: pytest.FixtureRequest) -> Any:
    """Each engine in turn: a test that takes it states what every engine must give (Spark: the shared one)."""
    if request.param == "spark":
        return request.getfixturevalue("spark_engine")
    return request.param
