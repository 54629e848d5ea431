"""Everything otelperf does so that secrets never leave the process (docs/security.md).

One layer serves every path that exports text (span attributes and events, status descriptions,
finding events, metric labels, log lines):

- :mod:`~otelperf.redaction.url`: credentials in URLs and query strings;
- :mod:`~otelperf.redaction.sql`: literals and comments out of SQL;
- :mod:`~otelperf.redaction.text`: URLs, credential pairs and database echoes in free text;
- :mod:`~otelperf.redaction.exceptions`: exceptions read as objects, at record time;
- :mod:`~otelperf.redaction.span_filter`: the export-side safety net for exception events and
  status descriptions otelperf did not write itself.

:func:`configure` applies the settings process-wide; ``otelperf.init()`` calls it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelperf.redaction import text as _text
from otelperf.redaction.exceptions import configure_exception_messages
from otelperf.redaction.url import QueryPolicy, configure_query_policy

if TYPE_CHECKING:
    from otelperf.config import Settings

__all__ = ["configure"]


def configure(settings: Settings | None = None) -> None:
    """Apply the redaction settings to this process (None: the defaults); caches are reset.

    >>> from otelperf.config import resolve_settings
    >>> configure(resolve_settings(environ={}, sensitive_query_params="ticket"))
    >>> from otelperf.redaction.url import redact_query
    >>> redact_query("ticket=t1&page=2")
    'ticket=REDACTED&page=2'
    >>> configure()
    """
    if settings is None:
        configure_query_policy(None)
        configure_exception_messages("keep")
    else:
        configure_query_policy(
            QueryPolicy.from_settings(settings.sensitive_query_params, settings.query_params_allow)
        )
        configure_exception_messages(settings.exception_messages)
    _text.reset_caches()
