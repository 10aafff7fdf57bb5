"""A browser-like Server-Sent Events client over a real socket, parsing as the WHATWG spec says:
fields `id`, `data`, `event`, `retry`; a comment line starts with ':'; a blank line dispatches;
the last event id is set at every dispatch, but a block without data fires no event."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


class SseClient:
    def __init__(self, url: str, headers: dict | None = None, last_event_id: str | None = None,
                 timeout: float = 20.0):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        hdrs = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = last_event_id
        self.conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=hdrs)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.last_event_id = ""
        self.comments = 0

    def body(self) -> dict:
        return json.loads(self.response.read())

    def next_event(self) -> dict:
        """The next dispatched event: {"id", "event", "data"} (data parsed as JSON)."""
        data, event, id_buffer = [], "message", self.last_event_id
        while True:
            raw = self.response.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                self.last_event_id = id_buffer
                if data:
                    return {"id": self.last_event_id, "event": event, "data": json.loads("\n".join(data))}
                data, event = [], "message"
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                id_buffer = value

    def events(self, n: int) -> list[dict]:
        return [self.next_event() for _ in range(n)]

    def close(self) -> None:
        self.conn.close()

