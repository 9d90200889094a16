"""Feast entities: one, the instrument."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Instrument id, upper case (AIG, BTCUSDT).",
)
