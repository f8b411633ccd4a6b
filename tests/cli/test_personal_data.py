"""Personal values from a units file appear nowhere a run writes, but in the generated copy itself.

`expc run` (on real units, exposures and events) and `expc generate` run
offline over a units file with distinctive personal values: first names and
e-mail addresses that the prompt may send (`send_pii`), phone numbers that no
prompt may send. Then every file they wrote is searched (the run directory:
plan, state, assignments, content store with its -wal and -shm, content.jsonl,
looks, reports; the `--store` and `-o` files of `expc generate`), and what the
commands printed (their log).

The exemption is precise: a value the prompt may send may appear only inside
a generated text, i.e. the `content` field of content.jsonl (and of
`expc generate`'s output), and the `content` column of the content store
(checked through SQLite for every other column, and in the raw file bytes once
each stored text is taken out). A value no prompt may send appears nowhere,
not even there. The search ignores case, since the offline model writes the
words of its prompt in lower case.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

from test_run_cli import _environment, expc  # noqa: F401 - the fixture applies here too

SPEC = """\
version: 1
experiment:
  id: pii-run
  unit: user_id
attributes:
  user_id: string
  first_name: {type: string, pii: true}
  email: {type: string, pii: true}
  phone: {type: string, pii: true}
  country: string
prompts:
  personal:
    model: offline/copywriter
    send_pii: [first_name, email]
    template: |
      Write a push inviting {{ user.first_name }} ({{ user.email }}) back to see what is new in {{ user.country }}.
    checks: {no_pii: true, on_fail: use_control, regenerate: 1}
  general:
    model: offline/punchy
    template: "Write a push about new arrivals in {{ user.country }}."
variants:
  - id: control
    content: New arrivals are waiting for you.
  - id: personal
    prompt: personal
    generate: {per: unit}
  - id: general
    prompt: general
    generate: {per: segment, segment_by: [country]}
metrics:
  - id: opened
    kind: proportion
    event: opened
    window: 1d
    role: primary
    mde: 10%
    baseline: 0.1
stopping:
  max_days: 3
  rules:
    - {when: max_days, then: stop_inconclusive}
"""

NAMES = ["Zebediah", "Philippa", "Octavius", "Wilhelmina", "Barnabus", "Clementine", "Thaddeus", "Ermengarde",
         "Ignatius", "Persephone", "Leopoldine", "Archibald"]
SURNAMES = ["Quartermaine", "Wolstenholme", "Fairweather", "Throckmorton", "Pennyfeather", "Huxtable",
            "Ravenscroft", "Oglethorpe", "Winterbottom", "Cholmondeley", "Blatherwick", "Fotheringay"]
COUNTRIES = ["shoes", "bags", "home"]
SENT = {"first_name", "email"}


def units() -> list[dict[str, str]]:
    return [{"user_id": f"u{i}", "first_name": name, "email": f"{name.lower()}.{SURNAMES[i].lower()}@example.org",
             "phone": f"+44 20 7946 {1000 + i * 7}", "country": COUNTRIES[i % 3]} for i, name in enumerate(NAMES)]


def personal_values() -> dict[str, set[str]]:
    """Attribute -> its values in the units file (lower case)."""
    return {a: {u[a].lower() for u in units()} for a in ("first_name", "email", "phone")}




def write_inputs(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """The spec, the units file, and exposures and events of every assigned unit."""
    from expc import compile_file
    from expc.runtime.assign import assign
    from expc.runtime.tables import read_units

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    units_path = tmp_path / "units.csv"
    with units_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(units()[0]))
        writer.writeheader()
        writer.writerows(units())
    plan = compile_file(spec)
    loaded = read_units(units_path, plan.attributes, plan.assignment.unit)
    variants = assign(plan, loaded).variant
    exposures, events = tmp_path / "exposures.csv", tmp_path / "events.csv"
    with exposures.open("w", encoding="utf-8") as fx, events.open("w", encoding="utf-8") as fe:
        fx.write("unit_id,variant,timestamp\n")
        fe.write("unit_id,event,timestamp,value\n")
        for i, (unit, v) in enumerate(zip(units(), variants)):
            if v >= 0:
                fx.write(f"{unit['user_id']},{plan.variants[v].id},2026-01-0{1 + i % 3}T10:00:00Z\n")
                if i % 2:
                    fe.write(f"{unit['user_id']},opened,2026-01-0{1 + i % 3}T12:00:00Z,1\n")
    return spec, units_path, exposures, events


def generated_texts(store: Path) -> list[str]:
    with sqlite3.connect(store) as db:
        return [row[0] for row in db.execute("SELECT content FROM calls") if row[0]]


def file_text(path: Path, generated: list[str]) -> str:
    """What a search sees of a file: its text, with the exempt generated copy taken out."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return json.dumps(pq.read_table(path).to_pylist(), default=str)
    if path.suffix == ".jsonl":  # the generated copy: every field but `content`
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return json.dumps([{k: v for k, v in r.items() if k != "content"} for r in records])
    raw = path.read_bytes()
    if path.name.startswith(("content.sqlite", "gen.sqlite")):
        for text in sorted(generated, key=len, reverse=True):
            raw = raw.replace(text.encode("utf-8"), b"")
    return raw.decode("utf-8", errors="replace")


def leaks(text: str, values: dict[str, set[str]]) -> list[str]:
    lowered = text.lower()
    return sorted(v for found in values.values() for v in found if v in lowered)


def store_leaks(store: Path, values: dict[str, set[str]]) -> list[str]:
    """Personal values in any column of the store but ``content``, read through SQLite."""
    with sqlite3.connect(store) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(calls)") if row[1] != "content"]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM calls").fetchall()
    return leaks(json.dumps(rows, default=str), values)


def check_written(files: list[Path], store: Path, printed: str) -> list[Path]:
    """Assert that no file (but the exempt copy) and nothing printed holds a personal value; the files searched."""
    values = personal_values()
    generated = generated_texts(store)
    assert generated, "nothing was generated"
    searched = []
    for path in files:
        assert not leaks(file_text(path, generated), values), (path.name, leaks(file_text(path, generated), values))
        searched.append(path)
    assert not store_leaks(store, values)
    assert not leaks(printed, values), leaks(printed, values)
    # the exemption is needed and no wider than it says: the copy holds only what the prompt may send
    copy = " ".join(generated).lower()
    assert any(name in copy for name in values["first_name"]), "the offline copy should name its reader"
    assert not leaks(copy, {"phone": values["phone"]})
    return searched


def test_expc_run_writes_no_personal_value_outside_the_generated_copy(tmp_path: Path) -> None:
    spec, units_path, exposures, events = write_inputs(tmp_path)
    run_dir = tmp_path / "run"
    done = expc("run", spec, "--units", units_path, "--exposures", exposures, "--events", events,
                "--run-dir", run_dir)
    assert done.exit_code == 0, done.stderr
    again = expc("run", spec, "--units", units_path, "--exposures", exposures, "--events", events,
                 "--run-dir", run_dir, "--fresh")  # the keyed store keys are stable: nothing is generated twice
    assert again.exit_code == 0, again.stderr
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["generation"]["this_invocation"]["calls"] == 0 and report["history"]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"content.sqlite", "content.jsonl", "assignments.parquet", "plan.json", "state.json", "report.json",
            "report.md", "report.html"} <= names
    searched = check_written(files, run_dir / "content.sqlite", done.stdout + done.stderr + again.stdout + again.stderr)
    assert any(p.parent.name == "looks" for p in searched)
    samples = report["content_samples"]["personal"]
    assert any("[first_name]" in s["content"] for s in samples)  # what the reports show instead
    with sqlite3.connect(run_dir / "content.sqlite") as db:
        requests = [json.loads(r[0]) for r in db.execute("SELECT request FROM calls")]
    assert any("[first_name] ([email])" in m["content"] for r in requests for m in r["messages"])


def test_expc_generate_writes_no_personal_value_outside_the_generated_copy(tmp_path: Path) -> None:
    spec, units_path, _, _ = write_inputs(tmp_path)
    store, out = tmp_path / "gen.sqlite", tmp_path / "gen.jsonl"
    done = expc("generate", spec, "--units", units_path, "--store", store, "-o", out)
    assert done.exit_code == 0, done.stderr
    files = [p for p in tmp_path.iterdir() if p.is_file() and p.name.startswith("gen.")]
    assert {p.name for p in files} >= {"gen.sqlite", "gen.jsonl"}
    check_written(files, store, done.stdout + done.stderr)
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {i["unit"] for i in items if i["variant"] == "personal"} == {u["user_id"] for u in units()}
