"""The dependency direction of DESIGN.md, enforced by reading every import in src/caredesk (static imports,
and `__import__`/`importlib.import_module` with a literal name; lazy imports inside functions count too).

    cli, app, web, ui, channels  ->  domain folders  ->  platform
    accounts, contacts  <  conversations  <  routing, automation, ai, care, journeys, analytics, knowledge

Exceptions are listed explicitly with the reason; an exception that no longer occurs fails too, so the
list only shrinks."""

from __future__ import annotations

import ast
from pathlib import Path

import caredesk

SRC = Path(caredesk.__file__).resolve().parent
LOWER = {"accounts", "contacts"}
CORE = {"conversations"}
UPPER = {"routing", "automation", "ai", "care", "journeys", "analytics", "knowledge"}
DOMAIN = LOWER | CORE | UPPER
FRONT = {"web", "ui", "channels"}
ENTRY = {"app", "cli", "asgi"}  # the wiring: the only modules that may pick concrete adapters

# (importer, imported) pairs allowed against the rules, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # Alembic's environment must see every table to run and autogenerate migrations; it is the migration
    # runner, not platform code that runs inside a request.
    ("caredesk.platform.migrations.env", "caredesk.models"): "Alembic env loads every domain's tables",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from caredesk import web` imports caredesk.web
            found.update(f"{target}.{a.name}" for a in node.names if target == "caredesk")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {f for f in found if f == "caredesk" or f.startswith("caredesk.")}


def graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        mod = _module_name(path)
        out[mod] = imports_of(mod, path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return out


def part(module: str) -> str:
    """caredesk.conversations.models -> conversations; caredesk.app -> app."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def violations(g: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for importer, targets in g.items():
        src = part(importer)
        for target in targets:
            dst = part(target)
            if dst == src or not dst:
                continue
            rule = None
            if src == "platform":
                rule = "platform imports only platform (no domain, no wiring)"
            elif src in LOWER and (dst in CORE | UPPER | FRONT | ENTRY or dst in {"models", "demo"}):
                rule = "accounts and contacts sit below conversations"
            elif src in CORE and dst in UPPER | FRONT | ENTRY | {"demo"}:
                rule = "conversations does not import the domains above it (they react through the bus/jobs)"
            elif src in DOMAIN and dst in FRONT | ENTRY:
                rule = "no domain module imports web, ui, a channel or the wiring"
            elif dst == "channels" and src not in ENTRY:
                rule = "only app.py, cli.py and asgi.py pick channel adapters"
            if rule and (importer, target) not in EXCEPTIONS:
                found[(importer, target)] = rule
    return found


def test_the_dependency_direction_of_the_design_holds() -> None:
    g = graph()
    assert len(g) >= 100 and "caredesk.platform.db" in g and "caredesk.app" in g, len(g)
    found = violations(g)
    assert not found, "imports against DESIGN.md's dependency direction:\n" + "\n".join(
        f"  {a} -> {b}: {why}" for (a, b), why in sorted(found.items())
    )


def test_every_listed_exception_still_occurs() -> None:
    g = graph()
    stale = [pair for pair in EXCEPTIONS if pair[1] not in g.get(pair[0], set())]
    assert not stale, f"these exceptions no longer occur; remove them from EXCEPTIONS: {stale}"


def test_the_checker_sees_lazy_relative_and_dynamic_imports() -> None:
    src = (
        "def f():\n"
        "    from caredesk.web import deps\n"
        "    from ..channels.telegram import adapter\n"
        "    __import__('caredesk.ui.views')\n"
        "from caredesk import web\n"
    )
    found = imports_of("caredesk.routing.router", src)
    assert {"caredesk.web", "caredesk.channels.telegram", "caredesk.ui.views"} <= found
    bad = violations({"caredesk.routing.router": found, "caredesk.platform.db": {"caredesk.accounts.models"}})
    assert ("caredesk.routing.router", "caredesk.channels.telegram") in bad
    assert ("caredesk.platform.db", "caredesk.accounts.models") in bad
