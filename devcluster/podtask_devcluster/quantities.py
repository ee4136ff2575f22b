"""Kubernetes resource quantities (`512Mi`, `0.5Gi`, `1e9`, `250m`) as numbers. Pure."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    # "K" is not valid Kubernetes syntax, but people write it and mean kilo.
    "K": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkKMGTPE]))?$"
)


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a quantity; ValueError if it is not one."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation as error:
        raise ValueError(f"not a quantity: {text!r}") from error
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    return value * _DECIMAL[suffix or ""]


def parse_bytes(text: str | int | float) -> int:
    """A memory quantity in whole bytes, rounded up as Kubernetes does."""
    return math.ceil(parse_quantity(text))


# resource.Quantity's syntax, strictly (no "K"): kube-apiserver refuses anything else.
_STRICT = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)
_DECIMAL_SUFFIXES = {
    -9: "n",
    -6: "u",
    -3: "m",
    0: "",
    3: "k",
    6: "M",
    9: "G",
    12: "T",
    15: "P",
    18: "E",
}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
NANO = Decimal("1e-9")


def canonical_quantity(text: str | int | float) -> str:
    """The quantity as kube-apiserver stores it (resource.Quantity's canonical form): the
    format of the suffix kept (binary, decimal SI, exponent), the largest suffix that leaves an
    integer ("4000m" → "4", "8192Mi" → "8Gi", "375m" stays, "1536Mi" stays), binary values
    below 1024 or with a fraction written in decimal SI, precision rounded up to 1n. ValueError
    if it is not a quantity."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    raw = str(text).strip() if isinstance(text, str) else str(text)
    match = _STRICT.match(raw)
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    value = parse_quantity(raw)
    _, exponent_part, suffix = match.groups()
    if value == 0:
        return "0"
    # Precision beyond nano is rounded up (away from zero), as Quantity does.
    scaled = value / NANO
    rounded = Decimal(math.ceil(abs(scaled))) * (1 if value > 0 else -1)
    value = rounded * NANO
    binary = suffix in _BINARY_SUFFIXES[1:]
    if binary and abs(value) >= 1024 and value == value.to_integral_value():
        number = int(value)
        power = 0
        while number % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            number //= 1024
            power += 1
        return f"{number}{_BINARY_SUFFIXES[power]}"
    # Decimal: an integer mantissa times 10**exponent, exponent a multiple of 3, the largest.
    mantissa = int(rounded)  # in units of 1e-9
    exponent = -9
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if exponent_part is not None and not binary:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"
