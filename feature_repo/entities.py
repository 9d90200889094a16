"""Feast entities: the instrument, and the instrument as the key of its packed model vectors."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Instrument id, upper case (AIG, BTCUSDT).",
)

vector_symbol = Entity(
    name="vector_symbol",
    join_keys=["vector_symbol"],
    value_type=ValueType.STRING,
    description="Instrument id as the key of the packed model_vector views: the same values as "
    "symbol, its own Redis hash (2 fields) so the scorer's read does not walk the symbol's "
    "tick_features hash (live.wire.VECTOR_JOIN_KEY).",
)
