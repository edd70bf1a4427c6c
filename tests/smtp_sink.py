"""A minimal SMTP server on 127.0.0.1 that keeps every message it receives (for the e-mail tests)."""

from __future__ import annotations

import asyncio
import email
import email.message
import threading


class SmtpSink:
    """Speaks just enough SMTP for smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT); no TLS, no auth."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        async def shutdown():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", []
        await reply("220 sink ESMTP")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    await reply("250-sink")
                    await reply("250 8BITMIME")
                elif verb == b"MAIL":
                    sender, recipients = line[10:].strip().decode().strip("<>"), []
                    await reply("250 OK")
                elif verb == b"RCPT":
                    recipients.append(line[8:].strip().decode().strip("<>"))
                    await reply("250 OK")
                elif verb == b"DATA":
                    await reply("354 end with <CRLF>.<CRLF>")
                    body = bytearray()
                    while (data := await reader.readline()) not in (b".\r\n", b""):
                        body += data[1:] if data.startswith(b"..") else data  # dot-unstuffing
                    self.messages.append(email.message_from_bytes(bytes(body)))
                    self.envelopes.append((sender, recipients))
                    await reply("250 OK queued")
                elif verb == b"QUIT":
                    await reply("221 bye")
                    break
                else:  # HELO, RSET, NOOP
                    await reply("250 OK")
        finally:
            writer.close()


def text_body(message: email.message.Message) -> str:
    """The decoded text parts of a (possibly multipart) message, joined."""
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
                   for p in parts if p.get_content_maintype() == "text")
