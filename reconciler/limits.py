"""How hard a run talks to the API by default, shared by the command line and the fetcher.

Kept apart from both so that the command line can show it without importing the fetcher and its
HTTP stack (start-up time of `validate` and `--version`).

Default concurrency, 16: enough to hide a 50 ms round trip behind ~300 requests a second, while
staying below the request rates at which the vendor's management API starts throttling one
account; `--concurrency` raises it.
"""

from __future__ import annotations

DEFAULT_CONCURRENCY = 16
# The most `--concurrency` allows, checked once, by the option's type; the client's pool holds as many
# connections.
MAX_CONCURRENCY = 256
