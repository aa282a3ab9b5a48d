"""ComputeClient transport to the inference service over HTTP (standard library only: no extra package in Slicer).

Each request is one ``POST {url}/v1/compute`` whose body and answer are wire_format frames, sent from a
small thread pool so ``submit`` and ``poll`` never wait for the network; ``cancel`` is a
``POST {url}/v1/cancel/{id}``. The token travels as ``Authorization: Bearer``; use an https:// URL behind
a reverse proxy for TLS. An unreachable service answers the request with ComputeUnavailableError and sets
the client's notice.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from MVAComputeLib.compute_errors import AuthenticationError, ComputeUnavailableError, ProtocolError
from MVAComputeLib.wire_format import MEDIA_TYPE, decode_message, encode_message


class HttpTransport:
    """Requests to one inference service."""

    def __init__(self, url, token, timeout_s=600.0, threads=4):
        if not url.startswith(("http://", "https://")):
            raise ComputeUnavailableError(f"The inference service URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token or ""
        self.timeout_s = float(timeout_s)
        self._requests = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="compute-http")
        self._control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compute-http-cancel")
        self._on_reply = self._on_progress = self._tell = None

    def attach(self, on_reply, on_progress, tell):
        self._on_reply, self._on_progress, self._tell = on_reply, on_progress, tell

    def send(self, header, arrays):
        if header["kind"] == "cancel":
            self._control.submit(self._post_cancel, header["id"])
            return
        frame = encode_message(header, arrays)  # encoding errors reach the caller, nothing is sent
        self._requests.submit(self._post_request, header["id"], frame)

    def close(self):
        self._requests.shutdown(wait=False, cancel_futures=True)
        self._control.shutdown(wait=False, cancel_futures=True)

    def health(self, timeout_s=5.0):
        """The service's /v1/health answer (dict); raises ComputeUnavailableError or AuthenticationError."""
        request = urllib.request.Request(self.url + "/v1/health", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            raise self._http_error(error) from None
        except (urllib.error.URLError, OSError, socket.timeout) as error:
            raise ComputeUnavailableError(self._unreachable(error)) from None

    # --- worker threads ----------------------------------------------------------------------------------------
    def _headers(self, content_type=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _post_request(self, request_id, frame):
        from MVAComputeLib.compute_client import Reply
        request = urllib.request.Request(self.url + "/v1/compute", data=frame, method="POST",
                                         headers=self._headers(MEDIA_TYPE))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                header, arrays = decode_message(response.read())
            reply = Reply.from_frame(header, arrays) or Reply(
                request_id, "error", error=ProtocolError.__name__, message="The service sent no result frame")
        except urllib.error.HTTPError as error:
            failure = self._http_error(error)
            reply = Reply(request_id, "error", error=type(failure).__name__, message=str(failure))
            self._tell(str(failure))
        except ProtocolError as error:
            reply = Reply(request_id, "error", error=ProtocolError.__name__, message=f"Bad answer from {self.url}: "
                                                                                    f"{error}")
        except (urllib.error.URLError, OSError, socket.timeout) as error:
            message = self._unreachable(error)
            reply = Reply(request_id, "error", error=ComputeUnavailableError.__name__, message=message)
            self._tell(message)
        self._on_reply(reply)

    def _post_cancel(self, request_id):
        request = urllib.request.Request(f"{self.url}/v1/cancel/{request_id}", data=b"", method="POST",
                                         headers=self._headers())
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, OSError, socket.timeout):
            pass  # the request itself will report the service as unreachable

    def _http_error(self, error):
        try:
            detail = json.loads(error.read().decode("utf-8")).get("detail", "")
        except (ValueError, OSError, AttributeError):
            detail = ""
        if error.code == 401:
            return AuthenticationError(f"The inference service at {self.url} refused the token: check the "
                                       "remote inference token setting")
        return ComputeUnavailableError(f"The inference service at {self.url} answered HTTP {error.code}"
                                       + (f": {detail}" if detail else ""))

    def _unreachable(self, error):
        reason = getattr(error, "reason", error)
        return f"The inference service at {self.url} is unreachable ({reason})"
