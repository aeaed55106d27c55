"""Kubernetes' `$(VAR)` expansion of a container's command, args and env values, ported line for line
so that tests see what a kubelet hands the process.

Source: kubernetes/kubernetes, third_party/forked/golang/expansion/expand.go (`Expand`,
`tryReadVariableName`, `MappingFuncFor`/`syntaxWrap`), unchanged since Kubernetes 1.x: `$$` is a
literal `$`; `$(NAME)` is NAME's value, or left as written when NAME is not defined; an unclosed
`$(` and any other `$x` are literal; a `$` at the end is literal.
"""

from __future__ import annotations


def expand(text: str, variables: dict[str, str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":  # escaped operator
                read, advance = "$", 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close != -1:
                    name = rest[1:close]
                    read, advance = variables.get(name, f"$({name})"), close + 1
                else:  # incomplete reference
                    read, advance = "$(", 1
            else:
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]
