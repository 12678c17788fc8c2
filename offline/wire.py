"""The emulator on the wire: HTTP requests as botocore sends them, answers as the service does.

Routing and parameter locations come from botocore's own service model for
medical-imaging, so the emulator reads exactly what a real client serialises.
- `attach(client, emulator)`: in process; a botocore before-send hook answers the request.
- `serve(emulator, port)`: a local HTTP endpoint for `--endpoint-url` use.
The emulator receives parameters under the model's member names, as a boto3 call spells them.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from offline.emulator import HealthImagingEmulator, NoAnswer, ServiceError

OPERATIONS = ("GetImageSet", "GetImageSetMetadata", "ListImageSetVersions", "SearchImageSets", "CopyImageSet")


@lru_cache(maxsize=1)
def _routes() -> list[tuple[str, str, re.Pattern[str], Any]]:
    model = botocore.session.get_session().get_service_model("medical-imaging")
    routes = []
    for name in OPERATIONS:
        operation = model.operation_model(name)
        uri = operation.http["requestUri"].split("?")[0]
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", uri)
        routes.append((name, operation.http["method"], re.compile(f"^{pattern}$"), operation.input_shape))
    return routes


def dispatch(emulator: HealthImagingEmulator, method: str, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange: (status, headers, body)."""
    parts = urlsplit(url)
    for name, http_method, pattern, shape in _routes():
        match = pattern.match(parts.path)
        if not match or method != http_method:
            continue
        params: dict[str, Any] = {}
        query = parse_qs(parts.query)
        path_values = {key: unquote(value) for key, value in match.groupdict().items()}
        for member, member_shape in shape.members.items():
            location = member_shape.serialization.get("location")
            wire_name = member_shape.serialization.get("name", member)
            if location == "uri":
                params[member] = path_values[wire_name]
            elif location == "querystring" and wire_name in query:
                # Under the model's member name (GetImageSet's `versionId` travels as `version`).
                params[member] = _typed(query[wire_name][0], member_shape.type_name)
        payload = shape.serialization.get("payload")
        document = json.loads(body) if body else {}
        if payload:
            params[payload] = document
        else:
            params.update(document)
        try:
            result = emulator.call(name, params)
        except ServiceError as error:
            headers = {"x-amzn-ErrorType": error.code, "Content-Type": "application/json"}
            return error.status, headers, json.dumps({"message": error.message}).encode()
        if isinstance(result, bytes):  # GetImageSetMetadata's body, gzip already
            return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, result
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
    return 404, {"x-amzn-ErrorType": "UnknownOperationException"}, b'{"message":"unknown operation"}'


def _typed(raw: str, type_name: str) -> Any:
    if type_name == "boolean":
        return raw.lower() == "true"
    if type_name == "integer":
        return int(raw)
    return raw


class _RawBody(io.BytesIO):
    """What botocore reads a response body from."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def attach(client: Any, emulator: HealthImagingEmulator) -> None:
    """Answer this client's requests from the emulator, in process (wire format exercised)."""

    def before_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        raw: Any = request.body or b""
        if hasattr(raw, "read"):
            raw = raw.read()
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
        try:
            status, headers, payload = dispatch(emulator, request.method, request.url, body)
        except NoAnswer:
            raise ReadTimeoutError(endpoint_url=request.url) from None
        return AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), _RawBody(payload))

    client.meta.events.register("before-send.medical-imaging", before_send)


def serve(emulator: HealthImagingEmulator, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start a local endpoint in a daemon thread; `server.server_address` has the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                status, headers, payload = dispatch(emulator, "POST", self.path, self.rfile.read(length))
            except NoAnswer:
                self.close_connection = True  # the client sees the connection drop
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:  # keep the console quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
