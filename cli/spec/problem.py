"""A problem the spec's rules find: the field path the user has to change, and what is wrong there.
Its own module so that the cloud modules (cli/clouds/), whose rules the spec's rules call, can yield them."""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    key: bool = False  # point at the mapping key (a label or tag name), not its value
