"""Compiling policy rules (CEL, via the ``common-expression-language`` package) and evaluating them on columns.

Variables. The caller names the variables a condition may read and their kinds (``number``: raw numeric fields,
times as epoch seconds and numeric features; ``string``: text, categories and ids). Any other name is refused
when the rule is compiled, with its position.

Missing values. Numbers arrive as NaN and strings as "" (the conventions of ``features.inputs``); a condition
sees both as CEL ``null``. ``price == null`` tests for a missing value. A comparison or function call on a null
(``price < 50.0`` when the price is missing) is a CEL error: the rule does not hit that row and the row is counted
in ``RuleHits.missing`` for the rule. Any other evaluation error (e.g. ``int(category)`` of a non-number) does not
hit either and is counted in ``RuleHits.errors``. Nothing is raised per row. CEL's ``&&`` and ``||`` absorb an
error when the other side decides (``price != null && price < 50.0`` is false, not an error, for a missing price).

Numbers are CEL doubles: compare with ``50`` or ``50.0`` alike, but write arithmetic with double literals
(``price * 2.0``; ``price * 2`` mixes double and int, which CEL refuses). Such a rule is refused when it is
compiled: each rule is evaluated on probe values of the declared kinds and refused if that is a type error for all
of them. A NaN made by arithmetic (``0.0 / 0.0``) compares as an error too: counted in ``errors`` on that row.

Regular expressions. ``text.matches('pattern')`` with a literal pattern is compiled once per rule with RE2 (the
syntax CEL specifies; linear time, so a crafted title cannot make a pattern backtrack) instead of on every
evaluation as the CEL library does (~80 µs a call); an invalid pattern is refused when the rule is compiled.
``matches`` with a pattern that is not a literal still works, at the library's cost.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import cel
import numpy as np
import numpy.typing as npt
import re2

from policy.rulebook import Rule, RuleAction, RuleMode, reason_placeholders


class VariableKind(StrEnum):
    NUMBER = "number"
    STRING = "string"


# CEL's reserved words cannot name a variable (the spec's list).
CEL_RESERVED = frozenset((
    "false", "in", "null", "true", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while",
))
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STRING_LITERAL = re.compile(r"""(?s)[rR]?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")""")
# Names bound by CEL's comprehension macros: ``list.exists(x, x > 1.0)`` binds ``x``.
_MACRO_BINDING = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_PARSE_POSITION = re.compile(r"<input>:(\d+):(\d+):")
# Probe errors that mean the expression is wrong for every row, whatever the values (not a value problem).
_STATIC_ERROR_MARKERS = ("No such overload", "Unsupported operation", "Undefined variable or function",
                         "not a valid regex")
_PROBE_VALUES: tuple[Mapping[VariableKind, object], ...] = (
    {VariableKind.NUMBER: 1.0, VariableKind.STRING: "x"},
    {VariableKind.NUMBER: 0.0, VariableKind.STRING: ""},
)


class RuleCompileError(ValueError):
    """A rule that cannot be used: names the rule, the problem and where (line, column) or which name."""

    def __init__(self, rule: Rule, problem: str, *, line: int | None = None, column: int | None = None,
                 name: str | None = None) -> None:
        self.rule_id = rule.rule_id
        self.version = rule.version
        self.problem = problem
        self.line = line
        self.column = column
        self.name = name
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"rule {rule.label}: {problem}{where}")


def normalise_variables(variables: Mapping[str, VariableKind | str]) -> dict[str, VariableKind]:
    """Check the caller's variable declarations (a wiring bug otherwise surfaces as a refused rule)."""
    out: dict[str, VariableKind] = {}
    for name, kind in variables.items():
        if not _IDENTIFIER.match(name) or name in CEL_RESERVED:
            raise ValueError(f"variable name {name!r} is not a CEL identifier")
        out[name] = VariableKind(kind)
    return out


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its compiled program and the declared variables it reads."""

    rule: Rule
    program: cel.Program = field(repr=False, compare=False)
    variables: tuple[str, ...]
    # functions the compiled program calls: the rule's regular expressions, compiled once
    functions: Mapping[str, Callable[[object], bool | None]] = field(default_factory=dict, repr=False, compare=False)


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _first_use(source: str, name: str) -> tuple[int, int] | None:
    # Blank out string literals (same length) so a name inside quotes is not taken for a use.
    code = _STRING_LITERAL.sub(lambda m: " " * len(m.group(0)), source)
    match = re.search(rf"(?<![\w.]){re.escape(name)}\b", code) or re.search(rf"\b{re.escape(name)}\b", code)
    return _position(source, match.start()) if match else None


_MATCHES_CALL = re.compile(r"\.\s*matches\s*\(\s*")
_CLOSE_PAREN = re.compile(r"\s*\)")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported in the RuleCompileError, not on stderr
_RE2_OPTIONS.never_capture = True  # only whether it matches is used


def _regex_function(pattern: re2._Regexp) -> Callable[[object], bool | None]:
    def matches(text: object) -> bool | None:
        # A missing (or non-string) receiver gives null, which fails the condition the way CEL's own
        # matches() fails on null (a boolean operator on null is an error); raising here would make the CEL
        # library print every such row to stderr.
        if not isinstance(text, str):
            return None
        return pattern.search(text) is not None

    return matches


def _compile_regexes(rule: Rule, source: str) -> tuple[str, dict[str, Callable[[object], bool | None]]]:
    """Rewrite ``x.matches('literal')`` into a call of a function holding the compiled RE2 pattern."""
    literals = [m.span() for m in _STRING_LITERAL.finditer(source)]
    functions: dict[str, Callable[[object], bool | None]] = {}
    parts: list[str] = []
    cursor = 0
    for call in _MATCHES_CALL.finditer(source):
        if call.start() < cursor or any(start <= call.start() < end for start, end in literals):
            continue  # inside a string literal
        literal = _STRING_LITERAL.match(source, call.end())
        close = _CLOSE_PAREN.match(source, literal.end()) if literal else None
        if literal is None or close is None:
            continue  # not a literal pattern: left to the CEL library
        pattern_text = cel.evaluate(literal.group(0))  # CEL's own unescaping of the literal
        try:
            pattern = re2.compile(pattern_text, _RE2_OPTIONS)
        except re2.error as error:
            line, column = _position(source, literal.start())
            detail = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
            raise RuleCompileError(rule, f"invalid regular expression {pattern_text!r}: {detail}", line=line,
                                   column=column) from None
        name = f"_re_{rule.rule_id.replace('-', '_')}_{len(functions)}"
        functions[name] = _regex_function(pattern)
        parts.append(source[cursor:call.start()])
        parts.append(f".{name}()")
        cursor = close.end()
    parts.append(source[cursor:])
    return "".join(parts), functions


def compile_rule(rule: Rule, variables: Mapping[str, VariableKind | str]) -> CompiledRule:
    """Compile ``rule.condition`` once; raise ``RuleCompileError`` if it does not parse, reads a name that is not
    among ``variables``, is a type error on values of the declared kinds, or its reason uses an unknown field."""
    declared = normalise_variables(variables)
    source = rule.condition
    try:
        program = cel.compile(source)
    except ValueError as error:
        message = str(error)
        match = _PARSE_POSITION.search(message)
        detail = message.split("ERROR: ", 1)[-1].split("\n", 1)[0]
        detail = _PARSE_POSITION.sub("", detail).strip()
        if match:
            raise RuleCompileError(rule, f"condition does not parse: {detail}", line=int(match.group(1)),
                                   column=int(match.group(2))) from None
        raise RuleCompileError(rule, f"condition does not parse: {detail}") from None
    bound = set(_MACRO_BINDING.findall(_STRING_LITERAL.sub("''", source)))
    referenced = [name for name in program.variables() if name not in bound]
    for name in referenced:
        if name not in declared:
            where = _first_use(source, name)
            close = difflib.get_close_matches(name, list(declared), n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise RuleCompileError(
                rule, f"condition reads {name!r}, which is not a known variable{hint}",
                line=where[0] if where else None, column=where[1] if where else None, name=name)
    used = tuple(name for name in referenced if name in declared)
    for name, spec in reason_placeholders(rule.reason):
        if name not in declared:
            raise RuleCompileError(rule, f"reason uses {{{name}}}, which is not a known variable", name=name)
        probe = _PROBE_VALUES[0][declared[name]]
        try:
            format(probe, spec)
        except (TypeError, ValueError) as error:
            raise RuleCompileError(rule, f"reason placeholder {{{name}:{spec}}} does not fit a {declared[name]}: "
                                         f"{error}", name=name) from None
    rewritten, functions = _compile_regexes(rule, source)
    if functions:
        program = cel.compile(rewritten)
    _probe(rule, program, {name: declared[name] for name in used}, functions)
    return CompiledRule(rule=rule, program=program, variables=used, functions=functions)


def _first_sentence(message: str) -> str:
    # cel's messages go on with general advice after the first sentence; the first says what is wrong
    first = message.split("\n", 1)[0]
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def _probe(rule: Rule, program: cel.Program, kinds: Mapping[str, VariableKind],
           functions: Mapping[str, Callable[[object], bool | None]]) -> None:
    """Evaluate on non-missing values of the declared kinds (all numbers 1.0 and strings "x", then 0.0 and ""). A
    condition that gives a boolean for one of them is accepted: a value can make a valid condition fail (0.0 / 0.0
    is NaN, and CEL has no comparison for NaN). One that is a type error, or not a boolean, for all of them is wrong
    for every record, and refused now rather than counted as failing on each record later."""
    problems: list[str] = []
    for values in _PROBE_VALUES:
        context = cel.Context({name: values[kind] for name, kind in kinds.items()}, dict(functions))
        try:
            result = program.execute(context)
        except Exception as error:  # cel raises TypeError, RuntimeError, ZeroDivisionError, ...: classified below
            message = _first_sentence(str(error))
            if any(marker in message for marker in _STATIC_ERROR_MARKERS):
                problems.append(f"condition is a type error for values of the declared kinds: {message}")
            continue  # otherwise value-dependent (division by zero, a failed int("x")): fine on other records
        if isinstance(result, bool):
            return
        problems.append(f"condition must be true or false, got {type(result).__name__} {result!r}")
    if problems:
        raise RuleCompileError(rule, problems[0])


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that hit one row."""

    row: int
    rule_id: str
    version: int
    mode: RuleMode
    action: RuleAction


@dataclass(frozen=True)
class RuleHits:
    """What a rule set found on ``n_rows`` rows: ``matrix[row, j]`` is whether ``rules[j]`` hit ``row``.

    ``errors`` and ``missing`` count, per rule id, the rows where the condition could not be evaluated (it did
    not hit them): ``missing`` when a variable the rule reads was missing on that row, ``errors`` otherwise.
    """

    rules: tuple[Rule, ...]
    matrix: npt.NDArray[np.bool_]
    errors: Mapping[str, int]
    missing: Mapping[str, int]

    @property
    def n_rows(self) -> int:
        return int(self.matrix.shape[0])

    def _columns(self, mode: RuleMode | None) -> list[int]:
        return [j for j, rule in enumerate(self.rules) if mode is None or rule.mode is mode]

    def hits(self, mode: RuleMode | None = None) -> Iterator[RuleHit]:
        """Every hit (of one mode, or all), row by row."""
        columns = self._columns(mode)
        if not columns:
            return
        rows, which = np.nonzero(self.matrix[:, columns])
        for row, j in zip(rows.tolist(), which.tolist(), strict=True):
            rule = self.rules[columns[j]]
            yield RuleHit(row=row, rule_id=rule.rule_id, version=rule.version, mode=rule.mode, action=rule.action)

    def acting(self, row: int) -> list[RuleHit]:
        """The active rules that hit ``row``: the hits that act on its case."""
        return [hit for hit in self._row_hits(row) if hit.mode is RuleMode.ACTIVE]

    def shadow(self, row: int) -> list[RuleHit]:
        """The shadow rules that hit ``row``: logged and counted, never acting."""
        return [hit for hit in self._row_hits(row) if hit.mode is RuleMode.SHADOW]

    def _row_hits(self, row: int) -> list[RuleHit]:
        return [RuleHit(row=row, rule_id=r.rule_id, version=r.version, mode=r.mode, action=r.action)
                for r, hit in zip(self.rules, self.matrix[row].tolist(), strict=True) if hit]

    def hit_counts(self) -> dict[str, int]:
        """Rows hit, per rule id."""
        counts = self.matrix.sum(axis=0).tolist() if self.rules else []
        return {rule.rule_id: int(count) for rule, count in zip(self.rules, counts, strict=True)}

    def rule_column(self, rule_id: str) -> npt.NDArray[np.bool_]:
        """Which rows one rule hit."""
        for j, rule in enumerate(self.rules):
            if rule.rule_id == rule_id:
                return self.matrix[:, j].copy()
        raise KeyError(rule_id)


def cel_values(values: npt.ArrayLike, kind: VariableKind, n_rows: int, name: str) -> list[object]:
    """One column as the Python values CEL sees: floats, or str, with ``None`` (CEL null) for missing."""
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise ValueError(f"column {name!r} has shape {array.shape}, expected ({n_rows},)")
    if kind is VariableKind.NUMBER:
        try:
            numbers = array.astype(np.float64, copy=False).tolist()
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r} is declared a number but holds {array.dtype} values") from None
        return [None if math.isnan(v) else v for v in numbers]
    return [v if isinstance(v, str) and v else None for v in array.tolist()]


class RuleSet:
    """Compiled rules of one entity type, evaluated together on columns (one CEL context per row, shared by the
    rules). Retired rules are refused: ``stores.rules.RuleStore.current`` never returns them."""

    def __init__(self, rules: Sequence[CompiledRule], variables: Mapping[str, VariableKind | str]) -> None:
        self.variables = normalise_variables(variables)
        seen: set[str] = set()
        for compiled in rules:
            rule = compiled.rule
            if rule.rule_id in seen:
                raise ValueError(f"rule {rule.rule_id!r} appears twice in one rule set")
            seen.add(rule.rule_id)
            if rule.mode is RuleMode.RETIRED:
                raise ValueError(f"rule {rule.label} is retired and cannot be evaluated")
            unknown = [name for name in compiled.variables if name not in self.variables]
            if unknown:
                raise ValueError(f"rule {rule.label} reads {unknown}, not among this set's variables")
        self.compiled: tuple[CompiledRule, ...] = tuple(rules)
        self.rules: tuple[Rule, ...] = tuple(c.rule for c in rules)
        # The union of what the rules read, in a stable order: the only columns converted per call.
        self.reads: tuple[str, ...] = tuple(dict.fromkeys(n for c in rules for n in c.variables))

    @classmethod
    def from_rules(cls, rules: Sequence[Rule], variables: Mapping[str, VariableKind | str]) -> RuleSet:
        """Compile every rule; raise the first ``RuleCompileError`` (see ``compile_valid`` to keep the rest)."""
        return cls([compile_rule(rule, variables) for rule in rules], variables)

    @classmethod
    def compile_valid(
        cls, rules: Sequence[Rule], variables: Mapping[str, VariableKind | str]
    ) -> tuple[RuleSet, list[RuleCompileError]]:
        """The rules that compile, and the errors of those that do not: what a service starting with a stored
        rule that no longer fits (a feature renamed) uses to keep scoring with the others and report it."""
        compiled: list[CompiledRule] = []
        refused: list[RuleCompileError] = []
        for rule in rules:
            try:
                compiled.append(compile_rule(rule, variables))
            except RuleCompileError as error:
                refused.append(error)
        return cls(compiled, variables), refused

    def __len__(self) -> int:
        return len(self.compiled)

    def evaluate(self, columns: Mapping[str, npt.ArrayLike], n_rows: int) -> RuleHits:
        """Evaluate every rule on every row. ``columns`` must hold each variable the rules read (others are
        ignored), one value per row; a missing column is a wiring error and raises ``ValueError``."""
        n_rules = len(self.compiled)
        matrix = np.zeros((n_rows, n_rules), dtype=bool)
        errors = dict.fromkeys((r.rule_id for r in self.rules), 0)
        missing = dict.fromkeys((r.rule_id for r in self.rules), 0)
        if n_rules == 0 or n_rows == 0:
            return RuleHits(self.rules, matrix, errors, missing)
        absent = [name for name in self.reads if name not in columns]
        if absent:
            raise ValueError(f"columns lack variables the rules read: {absent}")
        values = {name: cel_values(columns[name], self.variables[name], n_rows, name) for name in self.reads}
        programs = [(j, c.program, c.rule.rule_id, c.variables) for j, c in enumerate(self.compiled)]
        context = cel.Context(functions={n: f for c in self.compiled for n, f in c.functions.items()})
        names = self.reads
        lists = [values[name] for name in names]
        for row in range(n_rows):
            row_values = {name: column[row] for name, column in zip(names, lists, strict=True)}
            context.update(row_values)
            for j, program, rule_id, reads in programs:
                try:
                    result = program.execute(context)
                except Exception:  # any CEL evaluation error (its type varies) is a non-hit, counted below
                    result = None
                if result is True:
                    matrix[row, j] = True
                elif result is not False:
                    # an error, or a non-boolean (null from a regex on a missing string): not a hit
                    if any(row_values[name] is None for name in reads):
                        missing[rule_id] += 1
                    else:
                        errors[rule_id] += 1
        return RuleHits(self.rules, matrix, errors, missing)
