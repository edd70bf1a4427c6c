"""The psql side of the ssh source: the script that streams one COPY as CSV, and what its output says
(the row count psql reports, the first error line, the records of the stream)."""

from __future__ import annotations

import re

from cvas.core.logs import SERVER_DIGITS, redact

# The line psql prints on stderr after the COPY (see _copy_script); its number is the
# row count the server reported for the COPY.
ROWS_MARK = "cvas-copy-rows"
ROWS_RE = re.compile(rf"^{ROWS_MARK} (\d+)$", re.MULTILINE)
STDERR_LIMIT = 64 * 1024       # keep at most this much of the remote stderr


def safe_message(text: str, limit: int = 300) -> str:
    """A server message made safe for logs: digit runs that may be ids hidden, length capped."""
    text = redact(text.strip(), SERVER_DIGITS)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_error(stderr: str) -> str:
    """The line of psql's stderr that says what failed (never DETAIL/CONTEXT, which may quote data)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(ROWS_MARK)]
    for marker in ("ERROR:", "FATAL:", "PANIC:", "invalid command", "No such file", "not found",
                   "Permission denied", "could not", "psql:"):
        for ln in lines:
            if marker in ln:
                return safe_message(ln)
    return safe_message(lines[0]) if lines else "no message"


class CsvRecordCounter:
    """Counts the records of a PostgreSQL CSV stream fed in chunks (quoted newlines are data).

    PostgreSQL doubles quotes inside quoted fields, so a newline ends a record exactly when
    the number of quote characters seen before it is even.
    """

    def __init__(self) -> None:
        self.records = 0
        self.in_quotes = False
        self.first_line = bytearray()
        self._first_done = False
        self.last_byte = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self._first_done:
            nl = chunk.find(b"\n")
            self.first_line += chunk if nl < 0 else chunk[:nl]
            self._first_done = nl >= 0 or len(self.first_line) > 65536
        self.last_byte = chunk[-1:]
        if b'"' not in chunk:
            if not self.in_quotes:
                self.records += chunk.count(b"\n")
            return
        parts = chunk.split(b'"')
        # parts alternate outside/inside quotes, starting in the current state
        for i, part in enumerate(parts):
            if (i % 2 == 0) != self.in_quotes:
                self.records += part.count(b"\n")
        if len(parts) % 2 == 0:
            self.in_quotes = not self.in_quotes

    @property
    def complete(self) -> bool:
        """The stream ended at a record boundary."""
        return not self.in_quotes and self.last_byte in (b"", b"\n")


def copy_script(sql: str, statement_timeout_ms: int) -> str:
    """The psql script run on Nova: read-only session, one COPY streamed to stdout.

    `COPY … TO STDOUT \\g |cat` sends the rows to psql's stdout through `cat` (psql ≥ 14);
    unlike a bare COPY TO STDOUT, psql then keeps the COPY's row count in ROW_COUNT, which
    `\\warn` reports on stderr, out of the data stream. No table, no file: nothing is left
    behind on the host, and a read-only session guarantees it.
    """
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return "\n".join([
        "\\encoding UTF8",
        "SET DateStyle = 'ISO, MDY';",
        "SET IntervalStyle = 'postgres';",
        "SET extra_float_digits = 1;",
        f"SET statement_timeout = {int(statement_timeout_ms)};",
        "SET default_transaction_read_only = on;",
        "COPY (",
        body,
        ") TO STDOUT WITH (FORMAT csv, HEADER) \\g |cat",
        f"\\warn {ROWS_MARK} :ROW_COUNT",
        "",
    ])
