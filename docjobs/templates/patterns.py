"""What a template's ``regex`` may cost to compile.

The ``regex`` module compiles a counted repeat (``a{100}``) into that many copies of what
it repeats, so nested counts multiply: ``(?:(?:(?:(?:a{100}){100}){100}){100})``, 40
characters, compiles to 10^8 copies and takes over 20 GB. Two checks bound that:

- :func:`check_expansion`, a pure reading of the pattern's text that counts the copies it
  can compile to at most, and refuses a pattern past :data:`MAX_EXPANSION` before anything
  compiles it. It runs wherever a template is validated.
- :func:`check_compiles`, the compile itself in a child process under a time and memory
  ceiling, for whatever the count does not foresee. The API runs it when a template is
  created or replaced, and the runner before it uses a pattern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from docjobs.bounded import Bounds, CeilingReached, run_bounded

MAX_EXPANSION = 10_000
"""Copies of its parts a pattern may compile to (each copy costs ~300 bytes; value
patterns need tens, such as ``\\d{4}-\\d{2}-\\d{2}``)."""
PATTERN_SECONDS_SETTING = "DOCJOBS_CEILINGS__PATTERN_SECONDS"
PATTERN_MEMORY_SETTING = "DOCJOBS_CEILINGS__PATTERN_MEMORY_MB"

_COUNTED = re.compile(r"\{(\d*)(?:,(\d*))?\}")
# Verbose mode moves a count away from what it repeats, and version 1 nests sets: where
# either may be on, only the text's digits are trusted (see _text_bound).
_LOOSE_SYNTAX = re.compile(r"\(\?[\^a-zA-Z0-9\-]*x|V1")


class PatternTooComplex(ValueError):
    """The pattern would take more than its ceiling to compile."""


def expansion(pattern: str) -> int:
    """How many copies of its parts ``pattern`` compiles to, at most (capped just past
    :data:`MAX_EXPANSION`). Over-counts freely; never under-counts."""
    if _LOOSE_SYNTAX.search(pattern):
        return _text_bound(pattern)
    return _structural_bound(pattern)


def check_expansion(pattern: str) -> None:
    if expansion(pattern) > MAX_EXPANSION:
        raise PatternTooComplex(
            f"regex {_shown(pattern)} compiles to more than {MAX_EXPANSION:,} copies of its "
            "parts (counted repeats such as {100} multiply when nested), which exceeds the "
            "ceiling for template patterns; use fewer or smaller counts, or + and *"
        )


def check_compiles(patterns: Sequence[str], bounds: Bounds) -> list[str]:
    """Compile each pattern in one child process within ``bounds``; the errors of those
    that do not compile (empty when all do). Raises :class:`PatternTooComplex` when the
    child runs out of time or memory. Blocks: call it off the event loop."""
    if not patterns:
        return []
    try:
        errors: list[str] = run_bounded(
            "docjobs.templates.patterns:compile_errors", list(patterns), bounds
        )
    except CeilingReached as exc:
        if exc.ceiling == "seconds":
            ceiling = f"{bounds.seconds:g} s ({PATTERN_SECONDS_SETTING})"
        else:
            ceiling = f"{bounds.memory_mb} MiB ({PATTERN_MEMORY_SETTING})"
        raise PatternTooComplex(
            f"Compiling the template's regex patterns exceeds the ceiling of {ceiling}; "
            "use fewer or smaller counted repeats."
        ) from None
    return [error for error in errors if error]


def compile_errors(patterns: list[str]) -> list[str]:
    """The child's side of :func:`check_compiles`: for each pattern, why it does not
    compile, or ``""``."""
    import regex as regex_engine  # only the child needs it

    errors = []
    for pattern in patterns:
        try:
            regex_engine.compile(pattern)
            errors.append("")
        except regex_engine.error as exc:
            errors.append(f"regex {_shown(pattern)} does not compile: {exc}")
    return errors


def _structural_bound(pattern: str) -> int:
    """Copies counted from the pattern's structure, read as version 0 reads it: each atom
    is one copy, times the count of every repeat around it (a range counts as its upper
    bound, an open range as its lower bound)."""
    cap = MAX_EXPANSION + 1
    # Per open group: [copies so far, copies of the last item] (what a count multiplies).
    groups: list[list[int]] = [[0, 0]]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        current = groups[-1]
        counted = _COUNTED.match(pattern, index) if char == "{" else None
        if counted is not None:
            factor = _factor(counted)
            current[0] = min(cap, current[0] + current[1] * (factor - 1))
            current[1] = min(cap, current[1] * factor)
            index = counted.end()
            continue
        if char == "(":
            groups.append([0, 0])
        elif char == ")" and len(groups) > 1:
            copies = max(1, groups.pop()[0])
            parent = groups[-1]
            parent[0] = min(cap, parent[0] + copies)
            parent[1] = copies
        elif char in "*+?":
            pass  # repeats with no count compile to one copy
        elif char == "|":
            current[1] = 0
        else:
            if char == "\\":
                index += 1
            elif char == "[":
                index = _set_end(pattern, index)
            current[0] = min(cap, current[0] + 1)
            current[1] = 1
        index += 1
    while len(groups) > 1:  # unclosed groups: the compile refuses them, count them anyway
        copies = max(1, groups.pop()[0])
        groups[-1][0] = min(cap, groups[-1][0] + copies)
    return groups[0][0]


def _factor(counted: re.Match[str]) -> int:
    # Nine digits pass any ceiling and keep int() far from its digit limit.
    low = int(counted[1][:9]) if counted[1] else 0
    if counted[2] is None:  # {n}
        return max(1, low)
    high = int(counted[2][:9]) if counted[2] else low
    return max(1, low, high)


def _set_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the set opened at ``start`` (version 0: sets do not nest,
    a ``]`` first in the set is a member); the pattern's end when none closes it."""
    index = start + 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
            continue
        if pattern[index] == "]":
            return index
        index += 1
    return len(pattern)


def _text_bound(pattern: str) -> int:
    """Every number in the text multiplied, times the text's length: whatever the syntax,
    a count is written in digits, and nothing compiles to more copies than that."""
    bound = len(pattern)
    for digits in re.findall(r"\d+", pattern):
        bound *= max(1, int(digits[:8]))
        if bound > MAX_EXPANSION:
            return MAX_EXPANSION + 1
    return bound


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 60 else f"{pattern[:57]}...")
