"""Settings errors in an operator's words: each bad setting once, by its PAYOUTS_ name.

Used by every process (the CLI, the workers, the web process). The input value is never
shown: it may be a seed or a password. Imports nothing heavy.
"""

from __future__ import annotations

import re

#: Settings whose errors are a consequence of another bad setting (pydantic says so itself).
_CONSEQUENTIAL = {"default_factory_not_called"}


def setting_errors(error: BaseException) -> list[str]:
    """One line per bad setting of a pydantic ValidationError: its PAYOUTS_ name and the problem.

    The input value is never shown (`input_value` may be a seed or a password).
    """
    lines: list[str] = []
    seen: set[str] = set()
    for item in error.errors(include_url=False, include_input=False, include_context=False):  # type: ignore[attr-defined]
        if item.get("type") in _CONSEQUENTIAL:
            continue
        loc = item.get("loc") or ()
        name = str(loc[0]) if loc else "?"
        env_name = f"PAYOUTS_{name.upper()}"
        if env_name in seen:
            continue
        seen.add(env_name)
        message = str(item.get("msg", "invalid"))
        # "Value error, approver 'GABC' is ..." -> "approver is ...": a quoted value may be a secret
        message = message.removeprefix("Value error, ")
        message = re.sub(r"'[^']*'", "(the value given)", message)
        lines.append(f"{env_name}: {message}")
    return lines


def describe_settings(error: BaseException) -> str:
    lines = setting_errors(error)
    head = f"{len(lines)} setting{'s are' if len(lines) != 1 else ' is'} not valid"
    body = "\n".join(f"  {line}" for line in lines)
    return f"{head} (fix it in the environment or .env):\n{body}"
