"""Sweep specs written as YAML (or JSON), read the same way by the API and the CLI."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

from optisweep.service.errors import InputError
from optisweep.service.input_checks import check_json_value, safe_text

ALIASES_REFUSED = "YAML aliases (*name) are not supported"


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases (a few lines of them expand to gigabytes: "billion laughs")
    and with dates left as the strings they were written as."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """The next node; a ComposerError at an alias (``*name``) instead of its anchor's node."""
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, ALIASES_REFUSED, mark)
        return super().compose_node(parent, index)


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    """A date or time as the text it was written as (JSON has no dates)."""
    return str(loader.construct_scalar(node))


_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_spec_text(text: str) -> dict[str, Any]:
    """A spec's text as a mapping of plain JSON data; InputError located in the spec (as
    ("body", field, ...)) if it is not YAML, uses aliases, or is not such a mapping."""
    try:
        data = yaml.load(text, Loader=_SpecLoader)
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = safe_text(exc.problem or "")
        raise InputError(f"not valid YAML or JSON: {problem}{at}", loc=("body",)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. an int of 5000 digits
        message = safe_text(str(exc).splitlines()[0]) if str(exc) else "nested too deeply"
        raise InputError(f"not valid YAML or JSON: {message}", loc=("body",)) from None
    if not isinstance(data, dict):
        raise InputError(
            f"a sweep spec is a mapping (name, workload, space, ...), got {type(data).__name__}",
            loc=("body",),
        )
    check_json_value(data, loc=("body",))
    return data


def dump_spec_text(spec: dict[str, Any]) -> str:
    """A stored spec as YAML that ``load_spec_text`` (and ``optisweep submit``) reads back,
    its fields in the order they were stored."""
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
