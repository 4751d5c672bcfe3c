"""A small evaluator for the subset of the Cloud Logging query language that infra/ uses.

Supported: AND, OR, NOT (also `-`), implicit AND by juxtaposition, parentheses, comparisons
`=`, `!=`, `>`, `>=`, `<`, `<=`, `:` (has: substring, or equality for numbers) and `:*` (field
present) on dotted paths such as `jsonPayload.stage`, `severity`, `resource.labels.job_id`.
`severity` compares by level (DEFAULT < DEBUG < INFO < ... < EMERGENCY); a boolean field equals
`true` or `false`. Value extractors:
`EXTRACT(path)` and `REGEXP_EXTRACT(path, "re")`. Reference:
https://cloud.google.com/logging/docs/view/logging-query-language
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT",
              "EMERGENCY"]

_TOKEN = re.compile(r'''\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<op>:\*|>=|<=|!=|=|>|<|:|\(|\))
  | (?P<word>[A-Za-z0-9_@./+-]+)
)''', re.X)

_MISSING = object()


class QueryError(ValueError):
    """The filter uses syntax outside the supported subset."""


@dataclass
class _Cmp:
    path: str
    op: str
    value: object


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a filter."""
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"cannot parse at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise QueryError("unexpected end of filter")
        self.i += 1
        return tok

    def parse(self):
        tree = self.or_expr()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r}")
        return tree

    def or_expr(self):
        terms = [self.and_expr()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.and_expr())
        return ("or", terms) if len(terms) > 1 else terms[0]

    def and_expr(self):
        terms = [self.unary()]
        while (tok := self.peek()) is not None and tok not in (("op", ")"), ("word", "OR")):
            if tok == ("word", "AND"):
                self.take()
            terms.append(self.unary())
        return ("and", terms) if len(terms) > 1 else terms[0]

    def unary(self):
        tok = self.take()
        if tok in (("word", "NOT"), ("word", "-")):
            return ("not", self.unary())
        if tok == ("op", "("):
            inner = self.or_expr()
            if self.take() != ("op", ")"):
                raise QueryError("missing )")
            return inner
        if tok[0] != "word":
            raise QueryError(f"expected a field, got {tok[1]!r}")
        op = self.take()
        if op[0] != "op" or op[1] in "()":
            raise QueryError(f"expected a comparison after {tok[1]}, got {op[1]!r}")
        if op[1] == ":*":
            return _Cmp(tok[1], ":*", None)
        return _Cmp(tok[1], op[1], _literal(self.take()))


def _literal(tok: tuple[str, str]):
    kind, text = tok
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if kind != "word":
        raise QueryError(f"expected a value, got {text!r}")
    try:
        return float(text)
    except ValueError:
        return text


def lookup(entry: dict, path: str):
    """Value at a dotted path of a log entry, or _MISSING."""
    cur = entry
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _compare(c: _Cmp, entry: dict) -> bool:
    v = lookup(entry, c.path)
    if c.op == ":*":
        return v is not _MISSING and v is not None
    if c.op == "!=":
        return not _compare(_Cmp(c.path, "=", c.value), entry)
    if v is _MISSING or v is None:
        return False
    if c.path == "severity":
        a, b = SEVERITIES.index(str(v)), SEVERITIES.index(str(c.value))
    else:
        a, b = _number(v), _number(c.value)
        if a is None or b is None:   # a JSON boolean compares as true / false
            a, b = str(v).lower() if isinstance(v, bool) else str(v), str(c.value)
    if c.op == ":":
        return str(b).lower() in str(a).lower() if isinstance(a, str) else a == b
    if c.op == "=":
        return a == b
    if isinstance(a, str) != isinstance(b, str):
        return False
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[c.op]


def _eval(tree, entry: dict) -> bool:
    if isinstance(tree, _Cmp):
        return _compare(tree, entry)
    kind, arg = tree
    if kind == "not":
        return not _eval(arg, entry)
    if kind == "and":
        return all(_eval(t, entry) for t in arg)
    return any(_eval(t, entry) for t in arg)


def matches(query: str, entry: dict) -> bool:
    """Whether the log entry (a LogEntry-shaped dict) matches the filter."""
    return _eval(_Parser(query).parse(), entry)


_EXTRACTOR = re.compile(
    r'^(EXTRACT|REGEXP_EXTRACT)\(\s*([A-Za-z0-9_@./-]+)\s*(?:,\s*"(.*)")?\s*\)$')


def extract(extractor: str, entry: dict):
    """Value of a log-based metric's value or label extractor for one entry (None if absent)."""
    m = _EXTRACTOR.match(extractor.strip())
    if not m:
        raise QueryError(f"unsupported extractor {extractor!r}")
    v = lookup(entry, m.group(2))
    if v is _MISSING or v is None:
        return None
    if m.group(1) == "EXTRACT":
        return v
    found = re.search(m.group(3).replace("\\\\", "\\"), str(v))
    return found.group(1) if found else None
