"""What config sections are built from: the `section` decorator (a pydantic dataclass that refuses
unknown keys) and field types that are strict where YAML could slip a wrong kind through (true as 1,
"3" as 3, 2.0 as 2); tuples and nested sections still accept YAML's lists and mappings."""

from __future__ import annotations

from typing import Annotated

import pydantic
import pydantic.dataclasses

Float = Annotated[float, pydantic.Strict()]  # ints are accepted and become floats
Bool = Annotated[bool, pydantic.Strict()]
Str = Annotated[str, pydantic.Strict()]
Positive = Annotated[int, pydantic.Strict(), pydantic.Field(ge=1)]
Count = Annotated[int, pydantic.Strict(), pydantic.Field(ge=0)]
NonNegative = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0)]
PositiveFloat = Annotated[float, pydantic.Strict(), pydantic.Field(gt=0)]
Fraction = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0, lt=1)]
Probability = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0, le=1)]


def section(cls: type | None = None, /, *, frozen: bool = False):
    """Decorator: a config section, a pydantic dataclass refusing unknown keys. It keeps the
    dataclass API (fields, replace, asdict) and validates on every construction."""
    config = pydantic.ConfigDict(extra="forbid")
    wrap = pydantic.dataclasses.dataclass(config=config, frozen=frozen)
    return wrap if cls is None else wrap(cls)
