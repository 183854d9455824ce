"""Strict reading of TOML configuration: unknown keys rejected, errors name the field path.

Used by the service configuration (:mod:`hsm_signer.config`), the ceremony
configuration and the election definition, so every config error reads the same:
``hsm.token_label: expected a string, got 42``.
"""

from __future__ import annotations

import builtins
import tomllib
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import ConfigError

T = TypeVar("T")
_MISSING = object()


def resolve_path(base: Path, value: str) -> Path:
    """``value`` as a path; relative paths are relative to ``base`` (the config's directory)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def load_toml(path: Path | str, what: str = "configuration file") -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


class Table:
    """A TOML table being read; remembers which keys were used so leftovers are errors.

    ``docs`` names where the settings are documented (a leftover key's error points there);
    the tables read from this one inherit it."""

    def __init__(self, data: Any, path: str = "", docs: str = "the documented settings"):
        if not isinstance(data, dict):
            raise ConfigError(f"expected a table, got {type(data).__name__}", path or None)
        self.data = data
        self.path = path
        self.docs = docs
        self._used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, kinds: tuple[type, ...], kind_name: str, default: Any) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"missing; add {kind_name} value", self._name(key))
            return default
        value = self.data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ConfigError(f"expected {kind_name}, got {type(value).__name__} {value!r}", self._name(key))
        return value

    def str(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None) -> Any:
        value = self._get(key, (str,), "a string", default)
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(f"{value!r} is not one of {', '.join(choices)}", self._name(key))
        if isinstance(value, str) and not value and default is _MISSING:
            raise ConfigError("must not be empty", self._name(key))
        return value

    def int(self, key: builtins.str, default: Any = _MISSING, *, low: int | None = None, high: int | None = None) -> Any:
        value = self._get(key, (int,), "an integer", default)
        if isinstance(value, int):
            if low is not None and value < low:
                raise ConfigError(f"must be at least {low}, got {value}", self._name(key))
            if high is not None and value > high:
                raise ConfigError(f"must be at most {high}, got {value}", self._name(key))
        return value

    def number(self, key: builtins.str, default: Any = _MISSING, *, low: float | None = None) -> Any:
        value = self._get(key, (int, float), "a number", default)
        if isinstance(value, (int, float)) and low is not None and value < low:
            raise ConfigError(f"must be at least {low}, got {value}", self._name(key))
        return value

    def bool(self, key: builtins.str, default: Any = _MISSING) -> Any:
        return self._get(key, (bool,), "true or false", default)

    def list(self, key: builtins.str, default: Any = _MISSING) -> Any:
        return self._get(key, (list,), "a list", default)

    def table(self, key: builtins.str, default: Any = _MISSING) -> "Table | None":
        value = self._get(key, (dict,), "a table", default)
        return None if value is None else Table(value, self._name(key), self.docs)

    def tables(self, key: builtins.str, default: Any = _MISSING) -> builtins.list["Table"]:
        """An array of tables (``[[key]]``)."""
        items = self.list(key, default)
        return [Table(item, f"{self._name(key)}[{i}]", self.docs) for i, item in enumerate(items or [])]

    def each(self, key: builtins.str, read: Callable[[Any, builtins.str], T]) -> builtins.list[T]:
        return [read(item, f"{self._name(key)}[{i}]") for i, item in enumerate(self.list(key))]

    def done(self) -> None:
        """Reject keys nobody asked for (typos must not be silently ignored)."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"check the spelling against {self.docs}",
                self.path or None,
            )
