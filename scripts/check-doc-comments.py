#!/usr/bin/env python3
"""Fails when a public symbol of the embedder-facing modules has no doc comment of its own.

Reads the symbol graphs `swift package dump-symbol-graph --minimum-access-level public` wrote
(the directory is the first argument) and checks every symbol declared in this package's sources
(symbols without a source location, which the compiler synthesised, are skipped). A comment
inherited from a protocol of another module does not count: the symbol needs its own.
"""
import json
import pathlib
import sys

MODULES = ["APIKeyEngine", "APIKeyGuard", "APIKeyEngineService"]


def main() -> int:
    directory = pathlib.Path(sys.argv[1])
    sources = pathlib.Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else pathlib.Path.cwd().resolve()
    missing = []
    counted = 0
    for module in MODULES:
        graphs = sorted(directory.glob(f"{module}.symbols.json")) + sorted(directory.glob(f"{module}@*.symbols.json"))
        if not graphs:
            print(f"no symbol graph for {module} in {directory}", file=sys.stderr)
            return 2
        for graph in graphs:
            for symbol in json.loads(graph.read_text())["symbols"]:
                if symbol.get("accessLevel") not in ("public", "open"):
                    continue
                uri = symbol.get("location", {}).get("uri", "")
                path = pathlib.Path(uri.removeprefix("file://")).resolve() if uri else None
                if path is None or not str(path).startswith(str(sources / "Sources")):
                    continue
                counted += 1
                comment = symbol.get("docComment")
                own = comment is not None and comment.get("module", module) == module and any(
                    line.get("text", "").strip() for line in comment.get("lines", [])
                )
                if not own:
                    line = symbol["location"]["position"]["line"] + 1
                    name = ".".join(symbol["pathComponents"])
                    missing.append(f"{path.relative_to(sources)}:{line}: {name} has no doc comment")
    for entry in sorted(set(missing)):
        print(entry)
    print(f"{counted} public symbols in {', '.join(MODULES)}; {len(set(missing))} without a doc comment")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
