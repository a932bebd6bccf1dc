"""One WebSocket frame per distinct message: encoded, compressed and framed once, written to every
connection that sends it.

A tick posts one text to every subscriber of a filter set, and uvicorn's WebSocket protocol would
encode it, compress it (permessage-deflate, which every browser negotiates) and frame it once per
connection: 20 to 30 us a subscriber for a 1.5 KB update, more than computing it. ``SharedFrames`` is
uvicorn's protocol (``websockets``' sans-I/O ``ServerProtocol`` underneath) with three changes:

- permessage-deflate is negotiated with ``server_no_context_takeover`` (RFC 7692, 7.1.1.1: a server may
  answer any offer with it), so a message's compressed bytes depend on the message and the negotiated
  parameters alone, not on what the connection sent before;
- a text shorter than ``COMPRESS_FROM`` goes uncompressed (RFC 7692 lets a sender choose message by
  message: a frame without RSV1 is plain; Node's ``ws`` sends what is under 1 KiB so): an update of a few
  kilobytes a second is cheaper to send as it is than to compress, even once, for a subscriber of a
  filter set of its own; the history (a subscriber's first message, up to ~100 KB) is compressed;
- a text message's frame comes from ``FrameCache``, keyed by the text and what decides its bytes (plain,
  or the connection's deflate parameters): the first connection to send a text frames it (websockets'
  own ``serialize``, with the connection's own extension when compressed: the very bytes it would have
  written); the others write the same bytes.

Anything else (binary messages, a connection closing, extensions other than permessage-deflate) goes
through uvicorn's own ``send``.
"""

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

PROTOCOL = "bridge.frames:SharedFrames"
"""What to pass as uvicorn's ``ws`` (an import string: worker processes import it)."""

COMPRESS_FROM = 16 << 10
"""Texts of at least this many characters are compressed where permessage-deflate is negotiated: a
history, not an update (2 to 5 KB on a default server; compressing one costs ~20 us and saves a few
kilobytes a second, which no LAN notices)."""
PLAIN: Hashable = ()
"""The kind of a frame without extensions: a plain connection's, or a short text's on any connection."""

WINDOW_BITS = 12
COMPRESS_SETTINGS = {"memLevel": 5}
"""uvicorn's own choices for permessage-deflate (``websockets_sansio_impl``): 4 KiB windows, a small
compressor state per connection."""


class FrameCache:
    """The frames of the texts sent last, per connection kind, within ``max_bytes`` (oldest out first).

    A text over ``max_text`` characters (a subscriber's first message, the history, is ~90 KB) is framed
    for its connection without being kept."""

    def __init__(self, max_bytes: int = 8 << 20, max_text: int = 64 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_text = max_text
        # An OrderedDict, not a dict: a dict's oldest entry is found by walking past every one removed
        # before it (~1 us a frame once the cache is full, where each distinct update is framed once).
        self._frames: OrderedDict[tuple[Hashable, str], bytes] = OrderedDict()
        self._bytes = 0
        self.framed = 0
        """Texts encoded, compressed and framed."""
        self.reused = 0
        """Frames written again as they were."""

    def frame(self, text: str, kind: Hashable, extensions: Sequence[Extension]) -> bytes:
        """The frame of ``text`` for a connection whose ``extensions`` (stateless between messages) are
        of ``kind``."""
        key = (kind, text)
        found = self._frames.get(key)
        if found is not None:
            self.reused += 1
            return found
        self.framed += 1
        frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=extensions)
        if len(text) <= self.max_text:
            self._frames[key] = frame
            self._bytes += len(frame) + len(text)
            while self._bytes > self.max_bytes:
                (_, oldest), dropped = self._frames.popitem(last=False)
                self._bytes -= len(dropped) + len(oldest)
        return frame

    def __len__(self) -> int:
        return len(self._frames)


def frame_kind(extensions: Sequence[Extension]) -> Hashable | None:
    """What decides a text's frame on a connection with ``extensions``: None when a frame depends on
    more than the text (an extension with state between messages, or one this module does not know)."""
    if not extensions:
        return PLAIN
    if len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate):
        deflate = extensions[0]
        if deflate.local_no_context_takeover:
            return (
                "permessage-deflate",
                deflate.local_max_window_bits,
                tuple(sorted(deflate.compress_settings.items())),
            )
    return None


class SharedFrames(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, writing each text message's frame from ``frame_cache``."""

    frame_cache: ClassVar[FrameCache] = FrameCache()
    """One per process, as the frames it keeps are the same for every connection of a kind."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            # uvicorn's negotiation, but for server_no_context_takeover (the handshake has not begun).
            factory = ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                server_max_window_bits=WINDOW_BITS,
                client_max_window_bits=WINDOW_BITS,
                compress_settings=dict(COMPRESS_SETTINGS),
            )
            self.conn = ServerProtocol(extensions=[factory], max_size=self.config.ws_max_size, logger=self.conn.logger)
        self._kind: Hashable | None = None
        self._kind_known = False

    async def send(self, message: Any) -> None:  # an ASGISendEvent
        text = message.get("text") if message["type"] == "websocket.send" else None
        if text is None or message.get("bytes") is not None:
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        # uvicorn sends a data frame in this state only; in any other it raises or closes: its send says.
        ready = self.handshake_complete and not self.close_sent and self.initial_response is None
        if not ready or self.conn.state is not State.OPEN:
            await super().send(message)
            return
        if not self._kind_known:
            self._kind, self._kind_known = frame_kind(self.conn.extensions), True
        if self._kind is None:
            await super().send(message)
        elif len(text) < COMPRESS_FROM:
            self.transport.write(self.frame_cache.frame(text, PLAIN, ()))
        else:
            self.transport.write(self.frame_cache.frame(text, self._kind, self.conn.extensions))
