"""MkDocs hook: the reference pages, generated at build time so that they never drift.

- ``reference/spec.md``: the sweep spec, from the pydantic models behind ``POST /sweeps``
  (``optisweep.service.sweeps.schemas.SweepCreate`` and every model it nests): each field's
  name, type, default, constraints and description (its attribute docstring: the models
  document their fields that way, without pydantic's ``use_attribute_docstrings``).
- ``reference/api.md``: the REST API, from the app's OpenAPI schema
  (``optisweep.service.main.create_app().openapi()``, built without running its lifespan: no
  database, no Ray, no controller): every path and method, its summary, parameters, request
  body and responses, then the schemas they name.
- ``benchmarks.md`` includes ``benchmarks/README.md`` where it says
  ``<!-- include: benchmarks/README.md -->``, its relative links rewritten for the page (a
  snippet could not rewrite them, and strict mode fails on a link it cannot resolve).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INCLUDE = re.compile(r"^<!-- include: (?P<path>[^ ]+) -->$", re.MULTILINE)
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


# ---- shared helpers ---------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[type]:
    """The pydantic models an annotation names, however deeply (unions, lists, Annotated)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models_in(field.annotation)
        return
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _classes(roots: list[Any]) -> dict[str, type]:
    """Every model reachable from ``roots``, by class name (as the JSON schemas name them)."""
    found: dict[str, type] = {}
    for root in roots:
        for model in _models_in(root):
            found.setdefault(model.__name__, model)
    return found


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """``field: type = ...`` followed by a string: that string, per field (bases first)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("pydantic", "builtins", "typing")):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _class_doc(cls: type | None, schema: dict[str, Any]) -> str:
    own = cls.__dict__.get("__doc__") if cls is not None else None
    return inspect.cleandoc(own) if own else schema.get("description", "")


def _cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


CONSTRAINTS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "at least {} character{s}"),
    ("maxLength", "at most {} character{s}"),
    ("pattern", "matches `{}`"),
    ("minItems", "at least {} item{s}"),
    ("maxItems", "at most {} item{s}"),
    ("minProperties", "at least {} entr{ies}"),
    ("maxProperties", "at most {} entr{ies}"),
)
TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "null": "null",
    "array": "list",
    "object": "object",
}


def _constraints(schema: dict[str, Any]) -> list[str]:
    return [
        form.format(
            schema[key],
            s="" if schema[key] == 1 else "s",
            ies="y" if schema[key] == 1 else "ies",
        )
        for key, form in CONSTRAINTS
        if key in schema
    ]


def _type(schema: dict[str, Any], link: Any, *, top: bool = True) -> str:
    """A JSON schema as a short type: ``int (>= 1)`` or ``FloatRange`` (linked) or ..."""
    if "$ref" in schema:
        return link(schema["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(_type(part, link, top=False) for part in schema[key])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " or ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        text = f"list[{_type(items, link, top=False) if items else 'any'}]"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"dict[str, {_type(schema['additionalProperties'], link, top=False)}]"
    elif isinstance(kind, list):
        text = " or ".join(TYPES.get(k, k) for k in kind)
    elif kind is None:
        text = "any"
    else:
        text = TYPES.get(kind, kind)
        if schema.get("format"):
            text += f" ({schema['format']})"
    inner = _constraints(schema) if not top else []
    return f"{text} ({', '.join(inner)})" if inner else text


def _json(value: Any) -> str:
    from pydantic_core import to_jsonable_python

    text = json.dumps(to_jsonable_python(value), separators=(", ", ": "))
    return f"`{text}`"


def _fields_table(
    schema: dict[str, Any],
    cls: type | None,
    link: Any,
) -> list[str]:
    """A model's fields: name, type, default (required), constraints, description."""
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    docs = _attribute_docstrings(cls) if cls is not None else {}
    fields = getattr(cls, "model_fields", {}) if cls is not None else {}
    lines = [
        "| field | type | default | constraints | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, prop in properties.items():
        field = fields.get(name)
        if name in required:
            default = "required"
        elif field is not None:
            default = _json(field.get_default(call_default_factory=True))
        elif "default" in prop:
            default = _json(prop["default"])
        else:
            default = ""
        description = (
            (field.description if field is not None else None)
            or docs.get(name)
            or prop.get("description", "")
        )
        lines.append(
            f"| `{name}` | {_cell(_type(prop, link))} | {_cell(default)} "
            f"| {_cell(', '.join(_constraints(prop)))} | {_cell(description)} |"
        )
    return lines


def _ordered_refs(root: dict[str, Any], defs: dict[str, Any], prefix: str) -> list[str]:
    """Definitions in the order a reader meets them, walking from ``root`` breadth first."""
    order: list[str] = []
    queue = [root]
    while queue:
        text = json.dumps(queue.pop(0))
        for name in re.findall(rf'"\$ref": "{re.escape(prefix)}([^"]+)"', text):
            if name not in order and name in defs:
                order.append(name)
                queue.append(defs[name])
    order += [name for name in defs if name not in order]
    return order


# ---- the spec reference -----------------------------------------------------------------------


def spec_reference() -> str:
    from optisweep.service.sweeps.schemas import SweepCreate

    schema = SweepCreate.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.pop("$defs", {})
    classes = _classes([SweepCreate])

    def link(name: str) -> str:
        return f"[{name}](#{_slug(name)})"

    out = [
        "# Spec reference",
        "",
        "<!-- Generated by docs/hooks/reference.py from service/sweeps/schemas.py and the",
        "models it nests; edit the models' docstrings, not this page. -->",
        "",
        "Every field of a sweep spec (the body of `POST /api/v1/sweeps`, or the YAML file",
        "given to `optisweep submit`), generated from the pydantic models that validate it. The",
        "constraints are the ones declared on the fields; the checks that span fields or need",
        "the optimizer registry (a beta in [0, 1), a hyperparameter the family has, an",
        "objective the workload reports...) are described in [The sweep spec](../spec.md).",
        "A field marked *required* has no default. Models refuse fields they do not declare,",
        "except where a model says that it allows extra fields.",
        "",
    ]
    for name in ["SweepCreate", *_ordered_refs(schema, defs, "#/$defs/")]:
        part = schema if name == "SweepCreate" else defs[name]
        cls = classes.get(name)
        out += [f"## {name} {{#{_slug(name)}}}", ""]
        doc = _class_doc(cls, part)
        if doc:
            out += [doc, ""]
        if part.get("additionalProperties") is True:
            out += ["Extra fields are allowed (the workload validates them).", ""]
        out += [*_fields_table(part, cls, link), ""]
        for example in part.get("examples", []):
            out += ["Example:", "", "```json", json.dumps(example, indent=2), "```", ""]
    return "\n".join(out)


# ---- the REST API reference -------------------------------------------------------------------


def _app_models(app: Any) -> dict[str, type]:
    from fastapi.routing import APIRoute

    roots: list[Any] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            roots.append(route.response_model)
            if route.body_field is not None:
                roots.append(route.body_field.field_info.annotation)
            for extra in (route.responses or {}).values():
                if isinstance(extra, dict) and "model" in extra:
                    roots.append(extra["model"])
    return _classes(roots)


def api_reference() -> str:
    from optisweep.service.config import Settings
    from optisweep.service.main import create_app

    # A secret key given, so that building the app writes no key file; no controller; the
    # lifespan (database, Ray) only runs when a server starts the app, which nothing does here.
    app = create_app(Settings(secret_key="docs-build", debug=False), run_controller=False)
    spec = app.openapi()
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    classes = _app_models(app)

    def link(name: str) -> str:
        return f"[{name}](#schema-{_slug(name)})"

    operations: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            operations.setdefault(tag, []).append((method.upper(), path, operation))

    out = [
        "# REST API",
        "",
        "<!-- Generated by docs/hooks/reference.py from the app's OpenAPI schema; edit the",
        "routes' docstrings and models, not this page. -->",
        "",
        f"{spec['info'].get('summary') or spec['info']['title']} Generated from the OpenAPI",
        f"schema of the app (OpenAPI {spec.get('openapi', '')}), which a running server also",
        "serves to signed-in users at `/api/v1/openapi.json`, with an interactive version at",
        "`/docs`. Conventions (tokens, pagination, errors, NaN) are in [REST API](../rest.md).",
        "",
        "| method and path | summary |",
        "| --- | --- |",
    ]
    for tag_operations in operations.values():
        for method, path, operation in tag_operations:
            anchor = _slug(f"{method} {path}")
            summary = _cell(operation.get("summary", ""))
            out.append(f"| [`{method} {path}`](#{anchor}) | {summary} |")
    out.append("")
    for tag, tag_operations in operations.items():
        out += [f"## {tag}", ""]
        for method, path, operation in tag_operations:
            out += _operation(method, path, operation, link)
    out += ["## Schemas", ""]
    for name in _ordered_refs(spec["paths"], schemas, "#/components/schemas/"):
        out += _schema(name, schemas[name], classes.get(name), link)
    return "\n".join(out)


def _operation(
    method: str, path: str, operation: dict[str, Any], link: Callable[[str], str]
) -> list[str]:
    """One operation's section: summary, description, parameters, body, responses."""
    out = [f"### `{method} {path}` {{#{_slug(f'{method} {path}')}}}", ""]
    if operation.get("summary"):
        out += [f"**{operation['summary']}**", ""]
    if operation.get("description"):
        out += [inspect.cleandoc(operation["description"]), ""]
    if operation.get("security"):
        out += ["Needs an API token (`Authorization: Bearer ...`) or a session.", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        out += [
            "| parameter | in | type | required | default | description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            default = _json(schema["default"]) if "default" in schema else ""
            kind = _type(schema, link)
            limits = ", ".join(_constraints(schema))
            out.append(
                f"| `{parameter['name']}` | {parameter['in']} "
                f"| {_cell(kind + (f' ({limits})' if limits else ''))} "
                f"| {'yes' if parameter.get('required') else 'no'} | {_cell(default)} "
                f"| {_cell(parameter.get('description', ''))} |"
            )
        out.append("")
    body = operation.get("requestBody")
    if body:
        for content_type, content in body.get("content", {}).items():
            kind = _type(content.get("schema", {}), link)
            required = "required" if body.get("required") else "optional"
            out += [f"Request body ({required}): `{content_type}`, {kind}.", ""]
    out += ["| status | description | body |", "| --- | --- | --- |"]
    for status, response in sorted(operation.get("responses", {}).items()):
        kinds = [
            f"`{content_type}` {_type(content.get('schema', {}), link)}"
            if content.get("schema")
            else f"`{content_type}`"
            for content_type, content in response.get("content", {}).items()
        ]
        out.append(
            f"| {status} | {_cell(response.get('description', ''))} | {_cell(', '.join(kinds))} |"
        )
    return [*out, ""]


def _schema(name: str, part: dict[str, Any], cls: Any, link: Callable[[str], str]) -> list[str]:
    """One schema's section: its class's docstring, its enum or fields."""
    out = [f"### {name} {{#schema-{_slug(name)}}}", ""]
    doc = _class_doc(cls, part)
    if doc:
        out += [doc, ""]
    if "enum" in part:
        out += ["One of: " + ", ".join(f"`{json.dumps(v)}`" for v in part["enum"]) + ".", ""]
    if part.get("additionalProperties") is True:
        out += ["Extra fields are allowed.", ""]
    return [*out, *_fields_table(part, cls, link), ""]


# ---- includes ---------------------------------------------------------------------------------


def _included(relative: str, page_uri: str) -> str:
    """The repository file ``relative`` as part of the page ``page_uri``: its links to
    documentation files made relative to the page, links to other repository files turned
    into code text (they have no page), web links kept."""
    source = ROOT / relative
    docs = ROOT / "docs"
    page_dir = (docs / page_uri).parent

    def rewrite(match: re.Match[str]) -> str:
        text, target, anchor = match["text"], match["target"], match["anchor"] or ""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            return match[0]
        resolved = (source.parent / target).resolve()
        if resolved.is_relative_to(docs):
            return f"{match['bang']}[{text}]({os.path.relpath(resolved, page_dir)}{anchor})"
        return match[0] if match["bang"] else f"`{text.strip('`')}`"

    return LINK.sub(rewrite, source.read_text(encoding="utf-8"))


# ---- MkDocs events ----------------------------------------------------------------------------


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """``mkdocs serve`` rebuilds when what the generated and included parts come from changes."""
    for watched in ("service", "benchmarks/README.md", "examples"):
        path = str(ROOT / watched)
        if path not in config.watch:
            config.watch.append(path)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for uri, build in (("reference/spec.md", spec_reference), ("reference/api.md", api_reference)):
        files.append(File.generated(config, uri, content=build()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return INCLUDE.sub(lambda m: _included(m["path"], page.file.src_uri), markdown)
