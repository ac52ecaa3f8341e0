"""The ``scope-guard`` command line."""
