"""Every rule the code refuses with has its one HTTP status in web/statuses.py, and the domain
and the services never name a status.

The rule ids are read from the source (ast): every rule id given to ``Decision.deny``, directly
or through a function that passes its argument on (``Denied.by``, a module's own ``_bad`` or
``_deny``, ...), literal or a module's constant. A new rule without its status in the table,
or a rule id the scan cannot read, fails here with the place named.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from moorage.domain.decisions import NOT_FOUND, Decision
from moorage.web.statuses import DEFAULT, STATUS, status_of

SRC = Path(__file__).resolve().parents[2] / "src" / "moorage"


@dataclass
class Scan:
    rules: dict[str, list[str]] = field(default_factory=dict)  # rule id -> where it is refused with
    unread: list[str] = field(default_factory=list)  # a rule argument the scan cannot read
    statuses: list[str] = field(default_factory=list)  # a status= given to a decision (domain, services)


@dataclass(frozen=True)
class Wrapper:
    """A function that hands one of its parameters on as the rule id of a denial."""

    index: int  # the position of that parameter in a call (after self or cls)
    name: str  # the parameter's name, for a call by keyword


def _qualified(func: ast.expr) -> tuple[str | None, str] | None:
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    return None


def _functions(tree: ast.Module) -> list[tuple[str | None, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(class name or None, function) for every function of the module, methods included."""
    found: list[tuple[str | None, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            found += [(node.name, f) for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)]
    methods = {id(f) for _, f in found}
    found += [(None, f) for f in ast.walk(tree)
              if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and id(f) not in methods]
    return found


def _params(function: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> list[str]:
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    return names[1:] if in_class and names and names[0] in ("self", "cls") else names


def _constants(trees: dict[Path, ast.Module]) -> dict[str, str]:
    """Every module-level NAME = "text" of the package (NOT_FOUND, ...)."""
    found: dict[str, str] = {}
    for tree in trees.values():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.isupper() and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                found[node.targets[0].id] = node.value.value
    return found


def _rule_argument(call: ast.Call, wrapper: Wrapper) -> ast.expr | None:
    if len(call.args) > wrapper.index:
        return call.args[wrapper.index]
    return next((k.value for k in call.keywords if k.arg == wrapper.name), None)


def scan(root: Path) -> Scan:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(root.rglob("*.py"))}
    constants = _constants(trees)
    # Decision.deny takes the rule first; every function passing a parameter on to it (or to
    # such a function) does the same, found until no new one turns up.
    wrappers: dict[tuple[str | None, str], Wrapper] = {("Decision", "deny"): Wrapper(0, "rule")}
    defined: dict[Path, set[str]] = {path: set() for path in trees}
    visible: dict[Path, set[str]] = {path: set() for path in trees}

    def callee(path: Path, call: ast.Call) -> Wrapper | None:
        name = _qualified(call.func)
        if name is None or name not in wrappers:
            return None
        # A module's function is its own (a _bad here is not a _bad there) or imported by name.
        return wrappers[name] if name[0] is not None or name[1] in visible[path] else None

    changed = True
    while changed:
        changed = False
        for path, tree in trees.items():
            visible[path] = defined[path] | {a.asname or a.name for node in ast.walk(tree)
                                             if isinstance(node, ast.ImportFrom) for a in node.names
                                             if any(a.name in d for d in defined.values())}
            for owner, function in _functions(tree):
                params = _params(function, owner is not None)
                for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                    inner = callee(path, call)
                    argument = _rule_argument(call, inner) if inner else None
                    if isinstance(argument, ast.Name) and argument.id in params:
                        key = (owner, function.name)
                        if key not in wrappers:
                            wrappers[key] = Wrapper(params.index(argument.id), argument.id)
                            if owner is None:
                                defined[path].add(function.name)
                            changed = True

    result = Scan()
    for path, tree in trees.items():
        enclosing = {id(n): _params(f, owner is not None) for owner, f in _functions(tree) for n in ast.walk(f)}
        layer = path.relative_to(root).parts[0]
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            where = f"{path.relative_to(root)}:{call.lineno}"
            name = _qualified(call.func)
            wrapper = callee(path, call)
            decides = wrapper is not None or name in ((None, "Decision"), (None, "Denied"))
            if layer in ("domain", "services") and decides and any(k.arg == "status" for k in call.keywords):
                result.statuses.append(where)
            if wrapper is None:
                continue
            argument = _rule_argument(call, wrapper)
            pending = [argument]
            while pending:
                node = pending.pop()
                if isinstance(node, ast.IfExp):
                    pending += [node.body, node.orelse]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    result.rules.setdefault(node.value, []).append(where)
                elif isinstance(node, ast.Name) and node.id in constants:
                    result.rules.setdefault(constants[node.id], []).append(where)
                elif not (isinstance(node, ast.Name) and node.id in enclosing.get(id(call), [])):
                    result.unread.append(f"{where}: {ast.unparse(node) if node else 'no rule'}")
    return result


SCAN = scan(SRC)


def test_every_rule_refused_with_has_its_status_in_the_table() -> None:
    missing = {rule: where for rule, where in SCAN.rules.items() if rule not in STATUS}
    assert not missing, f"rule ids without a status in src/moorage/web/statuses.py: {missing}"


def test_every_rule_id_is_read() -> None:
    assert SCAN.rules, "the scan found no rule at all"
    assert not SCAN.unread, f"rule ids the scan cannot read (use a literal or a module constant): {SCAN.unread}"


def test_the_table_holds_only_rules_in_use() -> None:
    assert set(STATUS) - set(SCAN.rules) == set()


def test_the_domain_and_the_services_name_no_http_status() -> None:
    assert not SCAN.statuses, f"a decision given a status: {SCAN.statuses}"
    assert "status" not in Decision.__dataclass_fields__
    digits = re.compile(r"\bstatus\s*=\s*\d")
    for path in [*(SRC / "domain").rglob("*.py"), *(SRC / "services").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not digits.search(line), f"{path.relative_to(SRC)}:{number}: {line.strip()}"


def test_statuses() -> None:
    assert all(400 <= status < 600 for status in STATUS.values())
    assert status_of(Decision.deny("upload-window", "closed")) == 400
    assert status_of(NOT_FOUND) == 404
    assert status_of("sign-in-rate-limit") == 429
    assert status_of("reason-required") == 403 and status_of("lift-reason-required") == 409
    assert status_of("no-such-rule") == DEFAULT == 403


SAMPLE = '''
from moorage.domain.decisions import NOT_FOUND, Decision, Denied


def _refuse(why: str, rule: str) -> Denied:
    return Denied.by(rule, why)


def check(x: int) -> Decision:
    if x == 1:
        raise _refuse("no", rule="brand-new-rule")
    if x == 2:
        raise Denied(Decision.deny("another-new-rule", "no", status=400))
    if x == 3:
        raise Denied.by("upload-window" if x else "third-new-rule", "no")
    rule = f"rule-{x}"
    return Decision.deny(rule, "no")
'''


def test_the_scan_finds_a_new_rule_a_new_wrapper_and_a_status(tmp_path: Path) -> None:
    """What the tests above read: a rule added with a 400 in mind, behind a helper of its own,
    is found and has no status in the table; a status= in the domain is named; a rule id made
    up at run time is unreadable."""
    package = tmp_path / "moorage"
    (package / "domain").mkdir(parents=True)
    (package / "domain" / "decisions.py").write_text((SRC / "domain" / "decisions.py").read_text())
    (package / "domain" / "sample.py").write_text(SAMPLE)
    found = scan(package)
    assert {"brand-new-rule", "another-new-rule", "third-new-rule", NOT_FOUND} <= set(found.rules)
    assert {"brand-new-rule", "another-new-rule", "third-new-rule"}.isdisjoint(STATUS)
    assert found.statuses == ["domain/sample.py:13"]
    assert found.unread == ["domain/sample.py:17: rule"]


@pytest.mark.parametrize("rule", ["reason-required", "reopen-period", "removal-grace", "no-role", "deletions-disabled"])
def test_a_rule_once_answered_two_ways_is_found(rule: str) -> None:
    assert rule in SCAN.rules
