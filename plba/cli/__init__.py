"""Command-line shell: one click module per domain, assembled in :mod:`plba.cli.main`."""
