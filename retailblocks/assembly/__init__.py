"""Assembly: from a manifest and the installed blocks to a planned, routed, migrated set of blocks."""
