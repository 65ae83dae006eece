"""celib.book.sci: numbers in scientific notation for glued prose."""

import math

import pytest

from celib.book import sci


@pytest.mark.parametrize(
    "value, digits, expected",
    [
        (4.8e-06, 1, "4.8 × 10⁻⁶"),
        (1.4e7, 1, "1.4 × 10⁷"),
        (1.7976931348623157e308, 1, "1.8 × 10³⁰⁸"),
        (-2.0e-3, 0, "-2 × 10⁻³"),
        (9.96e-5, 1, "1.0 × 10⁻⁴"),  # rounding carries into the exponent
        (0.0, 1, "0"),
    ],
)
def test_sci(value, digits, expected):
    assert sci(value, digits) == expected


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_sci_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="finite"):
        sci(bad)
