"""The layer table of `docs/design.md` holds: every module imports only its own layer and the layers below it.

The table is read from the document itself, so the two cannot drift apart. Imports are parsed with `ast`
(function-level imports included), never executed.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
PACKAGE = "vqbet_ros"
SCANNED = ("vqbet_ros", "launch", "bench")  # every .py under these is placed in a layer
# Imports that make a module a ROS module; layers below `nodes` may use none of them.
ROS_LAYERS = ("apps", "launch", "nodes")
ROS_PACKAGES = ("rclpy", "launch", "launch_ros", "ament_index_python", "cv_bridge", "builtin_interfaces",
                "rosgraph_msgs", "rcl_interfaces")

# Known breaches, each removed by a move that is too large to make on its own (see docs/design.md,
# "Exceptions"). (importing file, imported module prefix) -> the move that removes it. None at present.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def layer_table() -> dict[str, tuple[list[str], set[str]]]:
    """layer -> (paths it covers, layers it may import), from the markdown table under "## Layers"."""
    section = DESIGN.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("layer", "---"):
            continue
        name, where, _, may_import = cells
        table[name] = (re.findall(r"`([^`]+)`", where), {m.strip() for m in may_import.split(",") if m.strip()})
    return table


def layer_of(path: str, table) -> str | None:
    """The layer whose `where` entry covers `path` (a file, or a folder ending in /)."""
    for name, (paths, _) in table.items():
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in paths):
            return name
    return None


def module_path(module: str) -> str | None:
    """`vqbet_ros.runtime.engine` -> `vqbet_ros/runtime/engine.py` (or the package's `__init__.py`)."""
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT).as_posix()
    return None


def imports_of(rel: str, source: str) -> list[str]:
    """Every module the file `rel` imports, absolute; `from a import b` yields `a.b` when that is a module,
    else `a`."""
    names = []
    package = ".".join(Path(rel).parent.parts)
    for node in ast.walk(ast.parse(source, rel)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.append(full if module_path(full) else base)
    return names


def breaches(rel: str, source: str, table) -> tuple[list[str], set]:
    """(imports of file `rel` that break the table, the exceptions it uses)."""
    layer = layer_of(rel, table)
    allowed = table[layer][1] | {layer}
    found, used = [], set()
    for name in dict.fromkeys(imports_of(rel, source)):  # once per module, however many names
        top = name.split(".")[0]
        if top == PACKAGE:
            target = module_path(name)
            target_layer = layer_of(target, table) if target else None
            if target_layer is None or target_layer in allowed:
                continue
            exception = next((key for key in EXCEPTIONS if key[0] == rel and name.startswith(key[1])), None)
            if exception is not None:
                used.add(exception)
                continue
            found.append(f"{rel} ({layer}) imports {name} ({target_layer}): layer `{layer}` may import only "
                         f"{sorted(allowed)}")
        elif layer not in ROS_LAYERS and (top in ROS_PACKAGES or re.search(r"_(msgs|srvs|interfaces)$", top)):
            found.append(f"{rel} ({layer}) imports {name}: only {list(ROS_LAYERS)} may import ROS packages")
    return found, used


def source_files() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for folder in SCANNED for p in (ROOT / folder).rglob("*.py"))


def test_design_layer_table_covers_every_module():
    table = layer_table()
    assert {"nodes", "runtime", "model", "data", "training", "base"} <= set(table), table
    for name, (_, may_import) in table.items():
        assert may_import <= set(table), f"layer `{name}` may import unknown layers {may_import - set(table)}"
    unplaced = [rel for rel in source_files() if layer_of(rel, table) is None]
    assert unplaced == [], f"files no row of the layer table in {DESIGN.name} covers: {unplaced}"


def test_package_layers_imports_point_down_only():
    table = layer_table()
    found, used = [], set()
    for rel in source_files():
        file_breaches, file_used = breaches(rel, (ROOT / rel).read_text(), table)
        found += file_breaches
        used |= file_used
    assert found == [], "imports against the layer table in docs/design.md:\n" + "\n".join(found)
    stale = sorted(set(EXCEPTIONS) - used)
    assert stale == [], f"exceptions no longer needed, remove them here and in {DESIGN.name}: {stale}"


def test_design_exceptions_are_listed_in_the_document():
    text = DESIGN.read_text().split("**Exceptions**", 1)[1]
    for importer, _ in EXCEPTIONS:
        assert f"`{importer}` imports" in text, f"{DESIGN.name} does not list the exception of `{importer}`"


def test_package_layers_report_names_both_modules_and_the_rule():
    table = layer_table()
    found, _ = breaches("vqbet_ros/runtime/probe.py", "def f():\n    from vqbet_ros.nodes import msg_convert\n",
                        table)
    assert found == ["vqbet_ros/runtime/probe.py (runtime) imports vqbet_ros.nodes.msg_convert (nodes): layer "
                     "`runtime` may import only ['base', 'model', 'runtime']"]
    found, _ = breaches("vqbet_ros/model/probe.py", "import rclpy\nfrom std_msgs.msg import Header\n", table)
    assert len(found) == 2 and all("may import ROS packages" in line for line in found)


def test_package_layers_a_wing_imports_neither_a_node_nor_another_wing():
    table = layer_table()
    for rel, module in (("vqbet_ros/pusht/probe.py", "vqbet_ros.nodes.pusht_sim_node"),
                        ("vqbet_ros/pusht/probe.py", "vqbet_ros.so101.scene"),
                        ("vqbet_ros/so101/probe.py", "vqbet_ros.pusht.robot"),
                        ("vqbet_ros/pusht/probe.py", "vqbet_ros.training.evaluate")):
        found, _ = breaches(rel, f"import {module}\n", table)
        assert len(found) == 1 and f"imports {module}" in found[0], (rel, module, found)
