"""Small helpers that read settings from the environment and fail loudly on bad values.

A typo in a deployment variable must stop the process at start-up, not surface later as a
surprising default (`DEBUG=ture` silently meaning False, say).
"""

from __future__ import annotations

import os
from datetime import timedelta

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ImproperlyConfiguredEnv(RuntimeError):
    pass


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be one of {sorted(_TRUE | _FALSE - {''})}, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfiguredEnv(f"{name} must be at most {maximum}, got {value}")
    return value


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def env_duration(name: str, default: str) -> timedelta:
    """A positive duration written as an integer and a unit: ``250ms``, ``90s``, ``15m``, ``12h``, ``30d``."""
    raw = (os.environ.get(name) or default).strip().lower()
    unit = "ms" if raw.endswith("ms") else raw[-1:]
    number = raw[: -len(unit)]
    if unit not in _UNITS or not number.isascii() or not number.isdigit() or int(number) <= 0:
        raise ImproperlyConfiguredEnv(
            f"{name} must be a positive whole number followed by ms, s, m, h or d (e.g. 30d), got {raw!r}"
        )
    return timedelta(seconds=int(number) * _UNITS[unit])


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]
