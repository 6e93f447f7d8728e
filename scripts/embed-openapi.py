#!/usr/bin/env python3
"""Writes Sources/APIKeyAPI/OpenAPIDocument.swift from docs/openapi.yaml, so the server binary
serves the document (`GET /openapi.yaml`) without reading a file at run time. `make openapi` runs
it; OpenAPIDocumentTests fails when the two differ."""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
document = (root / "docs/openapi.yaml").read_text(encoding="utf-8")
if '"""#' in document or "\\#" in document:
    sys.exit("docs/openapi.yaml holds a raw string's delimiter or escape; change embed-openapi.py")
swift = (
    "// Generated from docs/openapi.yaml by scripts/embed-openapi.py (`make openapi`): edit the\n"
    "// document, not this file.\n\n"
    "/// The OpenAPI document of the HTTP API, `docs/openapi.yaml`, served at `GET /openapi.yaml`.\n"
    "enum OpenAPIDocument {\n"
    "    /// The document's text.\n"
    '    static let yaml = #"""\n'
    + "".join(("        " + line if line.strip() else "") + "\n" for line in document.split("\n"))
    + '        """#\n'
    "}\n"
)
(root / "Sources/APIKeyAPI/OpenAPIDocument.swift").write_text(swift, encoding="utf-8")
