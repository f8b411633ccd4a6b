"""Project settings: defaults for the model options and the run directory, from one file, and ``--env-file``.

The settings live in ``[tool.expc]`` of ``pyproject.toml`` or at the top of
``expc.toml``, found in the current folder or its parents up to the git root
(the folder holding ``.git``; outside a repository, the current folder only).
The nearest folder that has settings wins; in one folder ``expc.toml`` wins
and ``pyproject.toml``'s ``[tool.expc]`` is then ignored (files are never
merged). Each value is used only where the option was not given::

    flag  >  environment (EXPC_MODEL, ...)  >  settings file  >  the spec's value

A settings file sits in the repository, so a pull request can change it: it
is checked like a spec. An unknown key, a value of the wrong type, an
``api_base`` that is not on the user's allow-list (``EXPC_ALLOWED_API_BASES``,
see :mod:`expc.compiler.destinations`), a model id with a URL in it, or a
``run_dir_root`` that leaves the project is one line naming the file (and its
line where it can be found) and exit 2. A settings file cannot name a key
variable or an env file. The environment and the flags are the user's own and
are not limited that way.

``--env-file PATH`` reads provider keys (dotenv format, through python-dotenv)
into this process's environment only; variables already set win, and nothing
is ever written. It is read only when named on the command line.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expc.compiler.errors import ExpcError

__all__ = ["DEFAULT_RUNS_ROOT", "ENV_VARS", "KEYS", "Settings", "SettingsError", "env_default", "find_settings",
           "load_env_file", "load_settings", "model_problem", "read_settings", "runs_root"]

EXIT_USAGE = 2
SETTINGS_BYTES = 1 << 20
ENV_FILE_BYTES = 1 << 20
MAX_ENV_VARS = 1000
MAX_CONCURRENCY = 1024
DEFAULT_RUNS_ROOT = Path(".expc") / "runs"
SETTINGS_FILE = "expc.toml"
PYPROJECT = "pyproject.toml"

#: Every setting, with what it is the default of.
KEYS: dict[str, str] = {
    "model": "--model: the litellm model id of every prompt",
    "api_base": "--api-base: the server every call goes to (must be on EXPC_ALLOWED_API_BASES)",
    "concurrency": "--concurrency: model calls in flight at once (1 to 1024)",
    "max_cost": "--max-cost: no new call once this much (USD) is spent",
    "run_dir_root": "where run directories live (<root>/<experiment-id>), relative to the settings file",
}
#: The environment variable of each setting (between a flag and the settings file).
ENV_VARS: dict[str, str] = {key: f"EXPC_{key.upper()}" for key in KEYS}


class SettingsError(ExpcError):
    """A settings file, a settings variable or an env file that cannot be used (exit 2: fix the setup)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Settings:
    """The values of one settings file (None where it sets nothing) and where they came from."""

    model: str | None = None
    api_base: str | None = None
    concurrency: int | None = None
    max_cost: float | None = None
    run_dir_root: Path | None = None  # absolute: resolved against the settings file's folder
    source: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)  # the keys the file set

    def get(self, key: str) -> Any:
        """The file's value of ``key`` (a name in :data:`KEYS`), or None."""
        return getattr(self, key)


# ====================================================================== finding the file


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def find_settings(start: Path | None = None) -> tuple[Path, dict[str, Any], str] | None:
    """The nearest settings: ``(file, its expc table, its text)``, or None when no folder up to the git root has any.

    Raises :class:`SettingsError` for a file that cannot be read or is not TOML.
    """
    start = Path.cwd() if start is None else Path(start).absolute()
    root = _git_root(start)
    folders = [start] if root is None else [start, *start.parents[: len(start.parts) - len(root.parts)]]
    for folder in folders:
        own = folder / SETTINGS_FILE
        if _is_file(own):
            text, data = _parse(own)
            return own, data, text
        project = folder / PYPROJECT
        if _is_file(project):
            text, data = _parse(project)
            tool = data.get("tool")
            table = tool.get("expc") if isinstance(tool, dict) else None
            if table is not None:
                if not isinstance(table, dict):
                    raise SettingsError(f"{project}: `tool.expc` must be a table ([tool.expc])")
                return project, table, text
    return None


def _parse(path: Path) -> tuple[str, dict[str, Any]]:
    from expc.compiler.sources import read_regular

    try:
        text = read_regular(path, SETTINGS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: is not valid TOML: {exc}") from None


# ====================================================================== checking the values


def _line_of(text: str, key: str, pyproject: bool) -> int | None:
    """The line (1-based) where ``key`` is set, searched from the ``[tool.expc]`` header in a pyproject.toml."""
    lines = text.splitlines()
    start = 0
    if pyproject:
        start = next((i for i, line in enumerate(lines) if re.match(r"\s*\[\s*tool\s*\.\s*expc\s*[\].]", line)), 0)
    pattern = re.compile(rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]""")
    header = re.compile(rf"""\s*\[\s*(?:tool\s*\.\s*expc\s*\.\s*)?(?:{re.escape(key)}|"{re.escape(key)}")\s*\]""")
    for i in range(start, len(lines)):
        if pattern.match(lines[i]) or header.match(lines[i]):
            return i + 1
    return None


def model_problem(value: str) -> str | None:
    """Why ``value`` cannot be a model id (a URL in it, a provider litellm does not know), or None."""
    from expc.compiler.destinations import has_url
    from expc.compiler.diagnostics import did_you_mean
    from expc.compiler.providers import known_providers, provider_of

    if has_url(value):
        return "a model id holds no URL; give the server with --api-base URL"
    provider = provider_of(value)
    if provider is not None and provider not in known_providers():
        hint = did_you_mean(provider.lower(), known_providers()) or "see https://docs.litellm.ai/docs/providers"
        return f"litellm knows no provider `{provider}` ({hint})"
    return None


def _check(key: str, value: Any, folder: Path, environ: Mapping[str, str]) -> tuple[Any, str | None]:
    """A settings file's value made usable, or the reason it cannot be used."""
    if key == "model":
        if not isinstance(value, str) or not value.strip():
            return None, "must be a model id (a string such as \"openai/gpt-4o-mini\")"
        problem = model_problem(value)
        return value, problem
    if key == "api_base":
        from expc.compiler.destinations import Allowances, parse_base

        if not isinstance(value, str) or parse_base(value) is None:
            return None, "must be a plain http(s)://host[:port][/path] URL"
        if not Allowances.from_environ(environ).base_allowed(value):
            return None, (f"{value} is not on your allow-list: a settings file in the repository may not choose "
                          "where calls (and keys) go; allow it in EXPC_ALLOWED_API_BASES, or pass --api-base URL "
                          "(or set EXPC_API_BASE)")
        return value, None
    if key == "concurrency":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
            return None, f"must be a whole number from 1 to {MAX_CONCURRENCY}"
        return value, None
    if key == "max_cost":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return None, "must be a number of US dollars, 0 or more"
        return float(value), None
    assert key == "run_dir_root"
    return _runs_folder(value, folder)


def _runs_folder(value: Any, folder: Path) -> tuple[Path | None, str | None]:
    """A ``run_dir_root`` inside the settings file's project: relative, no ``..``, reached through no link."""
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        return None, "must be a folder path (a string such as \".expc/runs\")"
    path = Path(value)
    if path.is_absolute() or ".." in path.parts:
        return None, (f"{value!r} leaves the project: a settings file in the repository may not choose where runs "
                      "write; give a path below the settings file's folder, or set EXPC_RUN_DIR_ROOT")
    current = folder
    for part in path.parts:
        current = current / part
        if current.is_symlink():
            return None, f"{current} is a symbolic link; a run directory is never reached through a link"
    return folder / path, None


def read_settings(path: Path, table: Mapping[str, Any], text: str = "",
                  environ: Mapping[str, str] | None = None) -> Settings:
    """The checked :class:`Settings` of ``table`` (the expc table of ``path``); :class:`SettingsError` on a bad key.

    Every key is checked before the first problem is reported, but only the
    first is reported: one line, naming the file, the line and the key.
    """
    env = os.environ if environ is None else environ
    pyproject = path.name == PYPROJECT
    where = "[tool.expc] " if pyproject else ""
    values: dict[str, Any] = {}
    for key, value in table.items():
        line = _line_of(text, str(key), pyproject)
        at = f"{path}:{line}" if line else str(path)
        if key not in KEYS:
            from expc.compiler.diagnostics import did_you_mean

            hint = did_you_mean(str(key), KEYS)
            raise SettingsError(f"{at}: {where}has no setting `{key}`"
                                + (f" ({hint})" if hint else f"; the settings are {', '.join(KEYS)}"))
        checked, problem = _check(key, value, path.parent, env)
        if problem is not None:
            raise SettingsError(f"{at}: {where}`{key}` {problem}")
        values[key] = checked
    return Settings(**values, source=path, values=dict(values))


def load_settings(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The nearest settings file's checked values (see the module docs); empty Settings when there is none."""
    found = find_settings(start)
    if found is None:
        return Settings()
    path, table, text = found
    return read_settings(path, table, text, environ)


# ====================================================================== precedence


def env_default(key: str, settings: Settings | Callable[[], Settings],
                environ: Mapping[str, str] | None = None) -> Any:
    """The value of ``key`` when its flag is not given: its environment variable, else the settings file's.

    ``settings`` may be a function, called only when the environment does not
    set the key. A bad value of the variable raises :class:`SettingsError`
    naming it.
    """
    env = os.environ if environ is None else environ
    name = ENV_VARS[key]
    raw = env.get(name)
    if raw is not None and raw.strip():
        return _from_env(key, name, raw.strip())
    if callable(settings):
        settings = settings()
    return settings.get(key)


def _from_env(key: str, name: str, raw: str) -> Any:
    if key == "model":
        problem = model_problem(raw)
        if problem:
            raise SettingsError(f"{name}: {problem}")
        return raw
    if key == "concurrency":
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= MAX_CONCURRENCY:
            raise SettingsError(f"{name}: {raw!r} is not a whole number from 1 to {MAX_CONCURRENCY}")
        return value
    if key == "max_cost":
        try:
            cost = float(raw)
        except ValueError:
            cost = -1.0
        if not math.isfinite(cost) or cost < 0:
            raise SettingsError(f"{name}: {raw!r} is not a number of US dollars, 0 or more")
        return cost
    if key == "run_dir_root":
        return Path(raw)
    return raw  # api_base: the user's own, as --api-base


def runs_root(flag: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
              settings: Settings | Callable[[], Settings] = load_settings) -> Path:
    """Where run directories live: the flag, else EXPC_RUN_DIR_ROOT, else the settings file's, else .expc/runs."""
    if flag is not None:
        return Path(flag)
    value = env_default("run_dir_root", settings, environ)
    return Path(value) if value is not None else DEFAULT_RUNS_ROOT


# ====================================================================== --env-file


def load_env_file(path: str | os.PathLike[str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the variables of the dotenv file ``path`` into ``environ`` (os.environ); returns the names set.

    A variable already in the environment keeps its value. The file must be a
    regular file of at most 1 MiB with at most 1,000 variables, and may not
    set the allow-lists (``EXPC_ALLOWED_API_BASES``, ``EXPC_ALLOWED_KEY_ENVS``:
    where keys may go is the job's environment's to say); otherwise (or when a
    line cannot be parsed) :class:`SettingsError` names it. Nothing is
    written anywhere and no value is ever printed.
    """
    import io

    from dotenv import dotenv_values

    from expc.compiler.destinations import ALLOWED_API_BASES, ALLOWED_KEY_ENVS
    from expc.compiler.sources import read_regular

    env = os.environ if environ is None else environ
    try:
        text = read_regular(path, ENV_FILE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such env file") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read as an env file ({exc.strerror or exc})") from None
    dotenv_log = logging.getLogger("dotenv.main")
    warnings: list[str] = []
    handler = _Collect(warnings)
    dotenv_log.addHandler(handler)
    previous = dotenv_log.propagate
    dotenv_log.propagate = False  # python-dotenv would print its own warning; the error below is the one line
    try:
        values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    finally:
        dotenv_log.removeHandler(handler)
        dotenv_log.propagate = previous
    if warnings:
        raise SettingsError(f"{path}: {warnings[0]}")
    if len(values) > MAX_ENV_VARS:
        raise SettingsError(f"{path}: sets {len(values):,} variables; an env file holds at most {MAX_ENV_VARS:,}")
    for name in values:  # every name is checked before the first variable is set
        if name in (ALLOWED_API_BASES, ALLOWED_KEY_ENVS):
            raise SettingsError(f"{path}: sets {name}, an allow-list; a file (which may be in the repository) "
                                "cannot widen where keys go: set it in the environment of the job")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            line = next((i + 1 for i, text_line in enumerate(text.splitlines()) if name in text_line), None)
            raise SettingsError(f"{path}: line {line} is not NAME=value with a variable name (A-Z, a-z, 0-9, _)"
                                if line else f"{path}: a name is not the name of an environment variable")
    names = []
    for name, value in values.items():
        if value is None or name in env:
            continue
        env[name] = value
        names.append(name)
    return names


class _Collect(logging.Handler):
    """Keeps where python-dotenv could not parse a line (never the line itself: it may hold a key)."""

    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        """Record the line number python-dotenv reports."""
        line = next((a for a in (record.args or ()) if isinstance(a, int)), None)
        self.out.append(f"line {line} cannot be parsed as NAME=value" if line else "a line cannot be parsed")
