"""The order flows: checkout, cancel, refund and recovery as sagas across the capabilities."""
