"""This repository's tests run with the table permission guard on: a block that writes a table it does not
own, or reads a core table it did not declare, fails the test that made it do so."""

import os

os.environ.setdefault("RETAILBLOCKS_ENFORCE_PERMISSIONS", "1")
