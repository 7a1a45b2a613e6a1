"""Many merchants on one deployment: ``platform.yaml``, each merchant's isolated storage, and the
operations on them (see docs/platform.md)."""
