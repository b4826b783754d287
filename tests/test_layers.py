"""stream/'s rooms import one way: each module only from its own room or from a room below it,
no two modules in a loop, and dreamer/ knows nothing of stream/."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first. A room's modules import their own room and the rooms on lower lines; rooms
# on one line do not import each other. A name ending in ".py" is a module at stream/'s top.
LAYERS = [
    ["core", "resources.py"],
    ["queue"],
    ["config.py"],
    ["logs.py", "notify.py"],
    ["inputs", "outputs"],
    ["spine"],
    ["relay"],
    ["front", "desktop", "render_video.py"],
    ["cli.py"],
    ["__main__.py", "__init__.py"],
]
ROOM_LAYER = {room: n for n, rooms in enumerate(LAYERS) for room in rooms}


def room_of(path: Path) -> str:
    """stream/front/app.py -> 'front'; stream/config.py -> 'config.py'."""
    return path.relative_to(ROOT / "stream").parts[0]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "stream").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The stream modules `module` imports (at the top or inside functions)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:  # "from . import mjpeg" names a module
                full = f"{name}.{alias.name}"
                out.add(full if full in known else name)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known and m != module}


def test_every_module_has_a_room():
    assert {room_of(p) for p in modules().values()} <= set(ROOM_LAYER)


def test_each_module_imports_only_its_own_room_or_lower_ones():
    known = modules()
    upward = []
    for module, path in known.items():
        mine = room_of(path)
        for other in imports(module, path, set(known)):
            theirs = room_of(known[other])
            if theirs != mine and ROOM_LAYER[theirs] >= ROOM_LAYER[mine]:
                upward.append(f"{module} -> {other}")
    assert upward == []


def test_no_modules_import_each_other_in_a_loop():
    known = modules()
    graph = {m: imports(m, p, set(known)) for m, p in known.items()}
    seen, on_path, loops = set(), [], []

    def visit(m):
        if m in on_path:
            loops.append(on_path[on_path.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_path.append(m)
        for other in sorted(graph[m]):
            visit(other)
        on_path.pop()
    for m in sorted(graph):
        visit(m)
    assert loops == []


def test_dreamer_knows_nothing_of_stream():
    for path in (ROOT / "dreamer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n == "stream" or n.startswith("stream.") for n in names), path


def test_the_wheel_ships_every_room():
    """pyproject.toml lists the packages the wheel carries: a room left out installs without it."""
    listed = (ROOT / "pyproject.toml").read_text().split("packages = [", 1)[1].split("]", 1)[0]
    rooms = {f"stream.{init.parent.name}" for init in (ROOT / "stream").glob("*/__init__.py")}
    assert rooms and not {room for room in rooms if f'"{room}"' not in listed}
