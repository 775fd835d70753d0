"""Business rules: boosts re-rank by rank score, pins take their slot, malformed rules are clear errors."""

from __future__ import annotations

import pytest

from recsys_cli.errors import InputError
from recsys_cli.rules import NO_RULES, Boost, Pin, Rules, apply_rules, parse_rules


def items(*brands: str) -> list[dict]:
    return [
        {
            "product_id": f"p{i}",
            "score": 1.0 - i / 10,
            "rank": i + 1,
            "source": "collaborative",
            "reason": "r",
            "brand": b,
            "price": 10.0 * i,
        }
        for i, b in enumerate(brands)
    ]


def order(result: list[dict]) -> list[str]:
    return [item["product_id"] for item in result]


def test_a_boost_of_two_halves_a_products_rank_ties_keeping_the_models_order():
    result = apply_rules(items("a", "a", "a", "b", "a"), 5, parse_rules(["brand:b:2"]), {})
    assert order(result) == ["p0", "p1", "p3", "p2", "p4"]  # 2 x 1/4 ties 1/2: the model's second stays ahead
    assert [item["rank"] for item in result] == [1, 2, 3, 4, 5]
    assert result[2]["reason"] == "r (shop rule brand b: x2)"
    assert order(apply_rules(items("a", "a", "a", "b"), 2, parse_rules(["brand:b:2.5"]), {})) == ["p0", "p3"]


def test_a_bury_and_a_price_range_and_factors_multiply():
    result = apply_rules(items("a", "b", "c", "d"), 4, parse_rules(["price:0-5:0.25"]), {})
    assert order(result) == ["p1", "p2", "p0", "p3"]  # p0 costs 0: 1/1 x 0.25 ties 1/4, ahead by its rank
    both = parse_rules(["brand:d:2", "price:25-:2"])
    assert order(apply_rules(items("a", "b", "c", "d"), 2, both, {})) == ["p0", "p3"]  # 1/4 x 2 x 2 = 1 ties p0, ahead by rank


def test_pins_take_their_slot_and_move_a_listed_product():
    listed = items("a", "a", "a", "a")
    rules = Rules(pins=(Pin("p3", 1), Pin("x", 3)))
    result = apply_rules(listed, 4, rules, {"p3": {**listed[3], "source": "rules"}, "x": {"product_id": "x", "reason": "featured"}})
    assert order(result) == ["p3", "p0", "x", "p1"]
    assert order(apply_rules(listed, 4, Rules(pins=(Pin("x", 2),)), {})) == ["p0", "p1", "p2", "p3"]  # not showable: no pin


def test_request_rules_add_to_the_settings():
    base = parse_rules(["brand:a:2"], ["p1:2"])
    merged = base.merged(parse_rules(["brand:b:3"], ["p1:1"]))
    assert [b.value for b in merged.boosts] == ["a", "b"] and merged.pins == (Pin("p1", 1),)
    assert base.merged(None) is base and not NO_RULES.active()
    assert parse_rules(["category:Women|Shoes:1.5"]).boosts[0] == Boost("category", "Women|Shoes", 1.5)


@pytest.mark.parametrize(
    ("boost", "pin", "message"),
    [
        (["colour:red:2"], [], "must be FIELD:VALUE:FACTOR"),
        (["brand:Acme"], [], "must be FIELD:VALUE:FACTOR"),
        (["brand:Acme:-1"], [], "the factor must be a positive number"),
        (["price:50-10:2"], [], "a price range is LOW-HIGH"),
        (["price:cheap:2"], [], "a price range is LOW-HIGH"),
        ([], ["SKU-1"], "must be PRODUCT:SLOT"),
        ([], ["SKU-1:0"], "must be PRODUCT:SLOT"),
    ],
)
def test_malformed_rules_name_the_rule(boost, pin, message):
    with pytest.raises(InputError, match=message):
        parse_rules(boost, pin, where="request")
