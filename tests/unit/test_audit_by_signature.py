"""Audit by signature (style.md, security.md): every public function of the portal's logic that
changes stored data takes the actor as a parameter, so forgetting who made a change fails here,
not silently in the audit trail. No logic module reads the request or the signed-in user.

A function "writes" when it adds, deletes or updates rows through the session, writes an audit
event, or calls a function of its own module that does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "portal"

# Modules that are not the logic layer: routes and commands make the actor; models, settings
# and the request's own machinery are below or beside it.
NOT_LOGIC = {
    "routes.py",
    "cli.py",
    "forms.py",
    "__init__.py",
}
NOT_LOGIC_PATHS = {
    "portal/security.py",
    "portal/access.py",
    "portal/templating.py",
    "portal/command_line.py",
    "portal/config.py",
    "portal/extensions.py",
    "portal/blueprints.py",
    "portal/clock.py",
}

# Writes that are nobody's act: housekeeping the portal does by itself as time passes.
HOUSEKEEPING = {
    "portal/records/jobs.py": {"settle_stalled", "expire_uploads"},
    # An upload's rows are the file itself: kept and deleted within acts jobs.py audits (the
    # upload, the discard), after use, or after 7 days.
    "portal/records/uploads.py": {"keep", "forget"},
    # ANALYZE: PostgreSQL's planner statistics, no stored record of anyone's changes.
    "portal/operations/statistics.py": {"gather", "after_bulk_write"},
}

# session.add(...), audit.record(...): a method of one of these receivers.
SESSION_METHODS = {"add", "add_all", "delete", "merge"}
AUDIT_METHODS = {"record", "record_many"}
AUDITS = {"audit", "events"}
WRITING_FUNCTIONS = {"record_update", "record_create", "exec_driver_sql"}
DML = {"insert", "update", "delete"}
# Writes whose rows carry their own actors (each made by events.event_row(actor, ...)).
CARRIES_ITS_ACTORS = {"portal/audit/events.py": {"record_many"}}


def _logic_modules() -> list[Path]:
    modules = []
    for path in sorted(PORTAL.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        # An area's routes may be split into modules named for what they serve
        # (journey/search_routes.py, worklist_routes.py, letter_routes.py): routes too.
        routes = path.name.endswith("_routes.py")
        if (
            path.name in NOT_LOGIC
            or routes
            or relative in NOT_LOGIC_PATHS
            or "/models/" in relative
        ):
            continue
        modules.append(path)
    return modules


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _receiver(call: ast.Call) -> str:
    func = call.func
    return ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""


def _writes_directly(function: ast.AST) -> bool:
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        if name in WRITING_FUNCTIONS:
            return True
        if name in SESSION_METHODS and _receiver(node).split(".")[-1] == "session":
            return True
        if name in AUDIT_METHODS and _receiver(node) in AUDITS:
            return True
        if name == "execute":
            for argument in ast.walk(node):
                if isinstance(argument, ast.Call) and _called_name(argument) in DML:
                    return True
    return False


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    found: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
    return found


def _writers(tree: ast.Module) -> set[str]:
    """Module-level functions that write, directly or through another function of the module."""
    functions = _functions(tree)
    writers = {name for name, f in functions.items() if _writes_directly(f)}
    changed = True
    while changed:
        changed = False
        for name, function in functions.items():
            if name in writers:
                continue
            called = {
                _called_name(node) for node in ast.walk(function) if isinstance(node, ast.Call)
            }
            if called & writers:
                writers.add(name)
                changed = True
    return writers


def _takes_an_actor(function: ast.FunctionDef) -> bool:
    arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
    return any(
        a.arg == "actor" and isinstance(a.annotation, ast.Name) and a.annotation.id == "Actor"
        for a in arguments
    )


@pytest.mark.parametrize("path", _logic_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_public_function_that_writes_takes_the_actor(path: Path):
    relative = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text())
    functions = _functions(tree)
    exempt = HOUSEKEEPING.get(relative, set()) | CARRIES_ITS_ACTORS.get(relative, set())
    missing = sorted(
        name
        for name in _writers(tree)
        if not name.startswith("_") and name not in exempt and not _takes_an_actor(functions[name])
    )
    assert missing == [], f"{relative}: these write but take no `actor: Actor`: {missing}"


@pytest.mark.parametrize("path", _logic_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_logic_module_reads_the_request_or_the_signed_in_user(path: Path):
    text = path.read_text()
    tree = ast.parse(text)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("flask", "flask_login"):
            imported |= {alias.name for alias in node.names}
    assert not imported & {"request", "current_user", "session", "g"}, path


def test_the_check_finds_a_writer_without_an_actor():
    """The check itself: a function that adds a row and takes no actor is found."""
    tree = ast.parse(
        "def add_note(text):\n"
        "    db.session.add(Note(text=text))\n"
        "def helper(x):\n"
        "    return add_note(x)\n"
        "def reader(x):\n"
        "    return x\n"
    )
    assert _writers(tree) == {"add_note", "helper"}
    assert not _takes_an_actor(_functions(tree)["add_note"])
