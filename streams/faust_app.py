"""Entry point for a plain Faust worker: ``faust -A streams.faust_app worker -l info``.

Reads the settings from the environment (``PLBA_*``) like ``plba worker`` does.
"""

from schemas.settings import Settings
from streams.worker import build_worker

app = build_worker(Settings.from_env()).app
