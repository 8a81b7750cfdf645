"""Layout check for Terraform files where no `terraform` binary is installed.

It checks the rules of `terraform fmt` that hand-written files break in practice: two spaces
of indent per line that opens brackets, the `=` of consecutive one-line attributes aligned one
space after the longest name (one space for a lone or multi-line attribute), no tabs or
trailing blanks, one final newline. It does not check the alignment of trailing comments, and
it is stricter than `terraform fmt` on trailing blanks inside comments. Where the binary
exists, check.py runs `terraform fmt -check` instead, which is authoritative.
"""

from __future__ import annotations

import re
from pathlib import Path

ATTRIBUTE = re.compile(r'^(?P<name>[A-Za-z_][\w-]*|"[^"]*")(?P<pad>\s*)=(?!=)\s*(?P<value>.*)$')


def _strip_strings_and_comments(line: str) -> str:
    """The line without string contents and comments, to count brackets."""
    out, in_string, i = [], False, 0
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
        elif c == "#" or line.startswith("//", i):
            break
        else:
            out.append(c)
        i += 1
    return "".join(out)


def format_problems(path: Path) -> list[str]:
    text = path.read_text()
    problems = []
    if "\t" in text:
        problems.append(f"{path.name}: contains tabs")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append(f"{path.name}: must end with exactly one newline")
    lines = text.split("\n")[:-1]
    # One indent level per line that opens brackets, however many it opens: `toset([` is one
    # level, closed again by `])`. Each entry counts the brackets a level still has open.
    levels: list[int] = []
    group: list[tuple[int, re.Match]] = []  # consecutive one-line attributes at one depth

    def close_group() -> None:
        if group:
            width = max(len(m.group("name")) for _, m in group)
            for number, m in group:
                if len(m.group("name")) + len(m.group("pad")) != width + 1:
                    problems.append(f"{path.name}:{number}: '=' not aligned with the lines around it")
        group.clear()

    def close(count: int) -> None:
        while count and levels:
            taken = min(count, levels[-1])
            levels[-1] -= taken
            count -= taken
            if levels[-1] == 0:
                levels.pop()

    for number, line in enumerate(lines, start=1):
        if line != line.rstrip():
            problems.append(f"{path.name}:{number}: trailing whitespace")
        stripped = line.strip()
        code = _strip_strings_and_comments(stripped)
        leading = len(re.match(r"^[}\])]*", code).group(0))
        # A line that starts by closing brackets sits at the level it closes into.
        expected = 2 * (len(levels) - (1 if leading and levels else 0))
        close(leading)
        rest = code[leading:]
        indent = len(line) - len(line.lstrip(" "))
        if stripped and indent != expected:
            problems.append(f"{path.name}:{number}: indent should be {expected} spaces")
        opens = rest.count("{") + rest.count("[") + rest.count("(")
        closes = rest.count("}") + rest.count("]") + rest.count(")")
        if opens > closes:
            levels.append(opens - closes)
        elif closes > opens:
            close(closes - opens)
        match = ATTRIBUTE.match(stripped)
        if match is not None and opens == closes:
            if group and group[-1][0] != number - 1:
                close_group()
            group.append((number, match))
        else:
            close_group()
            if match is not None and match.group("pad") != " ":
                problems.append(f"{path.name}:{number}: one space before '=' of a multi-line value")
    close_group()
    if levels:
        problems.append(f"{path.name}: unbalanced brackets")
    return problems
