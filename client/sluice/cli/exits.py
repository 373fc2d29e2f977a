"""The `sluice` command's exit codes: one table, which ``main`` follows and ``sluice --help`` prints.

0    success (and a job the command waited for completed)
1    the job failed: a job the command waited for ended partially_failed, failed or cancelled
2    usage or refused: bad flags or arguments (argparse), unreadable input or configuration, a missing extra
     (kafka), a request intake refused as invalid (400, 409, 413, 415, 422), or another error the command
     reports (the operator commands' own)
3    unavailable: intake (or Kafka) unreachable, failing (5xx), or still answering 503 or 429 after the retries
4    not found or not authorized: no such job or dead letter for this API key, or a key that is missing, unknown
     or refused (401, 403, 404; Kafka refusing the credentials)
5    timed out: --timeout passed before the job ended
130  interrupted (Ctrl-C)
141  stdout closed early (e.g. piped into head)
"""

import textwrap

from sluice.cli.common import KafkaTrouble, UsageError
from sluice.cli.config import ConfigError
from sluice.client.errors import (
    ApiError,
    IntakeUnreachable,
    NotAuthorized,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    WaitTimedOut,
)
from sluice.client.items import ItemsUnreadable
from sluice.client.kafka_auth import InvalidKafkaAuth
from sluice.errors import Refused

OK, FAILED, USAGE, UNAVAILABLE, NOT_FOUND, TIMED_OUT = 0, 1, 2, 3, 4, 5
INTERRUPTED, BROKEN_PIPE = 130, 141

EPILOG = "exit codes:\n" + textwrap.indent(__doc__.split("\n\n", 1)[1], "  ")

_BY_TYPE: tuple[tuple[type[BaseException], int], ...] = (
    (WaitTimedOut, TIMED_OUT),
    (IntakeUnreachable, UNAVAILABLE),
    (ServiceUnavailable, UNAVAILABLE),
    (RateLimited, UNAVAILABLE),
    (KafkaTrouble, UNAVAILABLE),
    (NotAuthorized, NOT_FOUND),
    (NotFound, NOT_FOUND),
    (Refused, NOT_FOUND),
    (UsageError, USAGE),
    (ConfigError, USAGE),
    (ItemsUnreadable, USAGE),
    (InvalidKafkaAuth, USAGE),
)
"""Anything else a command raises on purpose (a SluiceError) is USAGE, an answer of 500 and above UNAVAILABLE."""


def exit_code(error: BaseException) -> int:
    """The exit code for an error that ends a command (1 is kept for a job that failed: ``watching.watch``)."""
    for error_type, code in _BY_TYPE:
        if isinstance(error, error_type):
            return code
    if isinstance(error, ApiError) and error.status >= 500:
        return UNAVAILABLE
    return USAGE
