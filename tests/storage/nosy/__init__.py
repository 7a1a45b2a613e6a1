"""A block that reaches into tables it does not own, for the table permission tests."""
