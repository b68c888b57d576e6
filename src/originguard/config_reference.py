"""Render ``docs/config.md`` from the config models, so the reference cannot drift from the code.

Regenerate with: ``.venv/bin/python -m originguard.config_reference > docs/config.md``
"""

from __future__ import annotations

import ipaddress
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, IPvAnyNetwork, SecretStr, TypeAdapter
from pydantic.fields import FieldInfo

from originguard.config import Config, ListenAddress
from originguard.units import TypeLabel

__all__ = ["EXAMPLE", "render"]

EXAMPLE = """\
listen: ["0.0.0.0:80", "[::]:80"]
admin:
  listen: "10.0.0.5:9090"
  token: ${OG_ADMIN_TOKEN}
trusted_proxies: ["10.0.0.0/8"]
limits:
  max_body_size: 10MB
zones:
  - name: shop
    hostnames: [shop.example.com, "*.shop.example.com"]
    timeouts:
      connect: 5s
    pools:
      - name: primary
        steering: round_robin
        origins:
          - address: "10.0.1.10:8080"
          - address: "10.0.1.11:8080"
            weight: 0.5
      - name: backup
        origins:
          - address: "backup.internal:8080"
"""

INTRO = f"""\
# Configuration reference

originguard reads its configuration from one YAML file. `originguard check` validates the file
and prints it back with every default filled in and secrets shown as `***`. A bad file is
rejected whole, with one line per problem in the form `FILE:LINE: field.path: message`, for
example:

```
edge.yaml:14: zones.0.pools.0.origins.1.weight: Input should be less than or equal to 1
```

Unknown keys are errors, so a misspelt setting never passes silently.

**Units.** Durations are seconds or a string of number-unit parts, largest unit first: `250ms`,
`30s`, `5m`, `1h30m`, `1d` (units `d`, `h`, `m`, `s`, `ms`; fractions such as `1.5s` allowed).
Sizes are bytes or a number with a unit: `512`, `64KB`, `10MB`, `1GB`. Size units are
**binary, as in nginx**: `1KB` = `1KiB` = 1024 bytes, `1MB` = 1024 KB; unit letters are
case-insensitive.

**Environment variables.** Any string value may contain `${{NAME}}` or `${{NAME:-default}}`; the
default applies when the variable is unset or empty. A variable that is unset and has no default
is an error naming its file and line. Give secrets this way rather than writing them in the file.
Write `$${{` for a literal `${{`.

## Example

```yaml
{EXAMPLE}```

Only `zones` is required; everything else has the default shown in the tables below.
"""


def render() -> str:
    """The Markdown reference: the intro, then one table per section of ``Config``."""
    parts = [INTRO]
    _render_section(Config, "", "Top level", parts)
    return "\n".join(parts)


def _render_section(model: type[BaseModel], path: str, title: str, parts: list[str]) -> None:
    parts.append(f"## {title}\n")
    parts.append(f"{(model.__doc__ or '').strip()}\n")
    parts.append("| key | type | default | description |")
    parts.append("|---|---|---|---|")
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        section, many = _section_of(field.annotation)
        if section is not None:
            key_shown = f"{key}[]" if many else key
            nested.append((section, key_shown))
            kind = f"list of `{key_shown}`" if many else f"`{key_shown}` section"
            default = "required" if field.is_required() else "see below"
        else:
            kind = _type_label(field.annotation, field.metadata)
            default = _default_label(field)
        description = (field.description or "").replace("|", "\\|")
        parts.append(f"| `{name}` | {kind} | {default} | {description} |")
    parts.append("")
    for section, key in nested:
        _render_section(section, key, f"`{key}`", parts)


def _section_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds and whether it holds a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for argument in typing.get_args(annotation):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument, True
    return None, False


_PLAIN_LABELS: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    SecretStr: "secret",
    ListenAddress: "`host:port`",
    IPvAnyNetwork: "CIDR",
    ipaddress.IPv4Network: "CIDR",
    ipaddress.IPv6Network: "CIDR",
}


def _type_label(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, TypeLabel):
            return item.text
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_label(arguments[0], list(arguments[1:]))
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in arguments)
    if origin is tuple or origin is list:
        return "list of " + _type_label(arguments[0], [])
    if origin is typing.Union or origin is types.UnionType:
        present = [argument for argument in arguments if argument is not type(None)]
        labels = dict.fromkeys(_type_label(argument, []) for argument in present)
        label = " or ".join(labels)
        return f"{label} or null" if len(present) < len(arguments) else label
    return _PLAIN_LABELS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_label(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    adapter: TypeAdapter[Any] = TypeAdapter(field.rebuild_annotation())
    return f"`{_yaml_inline(adapter.dump_python(default, mode='json'))}`"


def _yaml_inline(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_inline(item) for item in value) + "]"
    return str(value)


if __name__ == "__main__":
    print(render(), end="")
