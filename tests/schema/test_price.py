"""Pay what you can: the price the form and the CSV import write, and reading it back to edit."""

from __future__ import annotations

import pytest

from schema import validate_activity
from schema.price import PAY_WHAT_YOU_CAN, describe_price, donation_of, is_free, pay_what_you_can
from tests.factories import weekly_activity


@pytest.mark.parametrize("suggested", [None, 3.0, 2.5, 0.5, 10_000.0])
def test_a_donation_is_a_valid_price_that_reads_back_as_made(suggested):
    price = pay_what_you_can(suggested)
    assert validate_activity(weekly_activity(price=price)) == []
    assert not is_free(price)  # nothing calls it free, nor gives an amount one must pay
    assert "amount" not in price
    assert donation_of(price) == (True, suggested)


def test_a_donation_is_said_in_plain_words():
    assert describe_price(pay_what_you_can()) == PAY_WHAT_YOU_CAN
    assert describe_price(pay_what_you_can(3)) == "Pay what you can (suggested donation £3.00)"


@pytest.mark.parametrize(
    "price",
    [
        {"isFree": True},
        {"isFree": True, "notes": PAY_WHAT_YOU_CAN},  # free, whatever the notes say
        {"amount": 3.5, "currency": "GBP"},
        {"amount": 3.5, "currency": "GBP", "notes": PAY_WHAT_YOU_CAN},  # a set charge
        {"isFree": False, "notes": "£2, or £1 for under-16s"},
        {"isFree": False, "notes": "Pay what you can, suggested £3.00"},
        {},
    ],
)
def test_other_prices_are_not_read_as_a_donation(price):
    assert donation_of(price) == (False, None)
