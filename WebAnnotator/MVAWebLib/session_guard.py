"""Who may connect to a trame server process: one browser at a time, checked at wslink's hello.

wslink asks every registered LinkProtocol that has `validateToken(token, client_id)` whether the secret a
browser sends with `wslink.hello` is good; a refused browser gets "Authentication failed" and every later
message of it is rejected by wslink itself ("Unauthorized"), so it can neither read the state nor call
anything. trame keeps one state per process, so at most one browser (the owner) is let in:

- `mva serve` (one person): the first browser is the owner; while it is connected, any other tab is refused.
- a team session process: a browser must bring a one-time ticket of the process's own user; a newer browser of
  that user (a reload, a second tab) takes over and the older one is disconnected.
"""
import asyncio
import hmac
import logging

from wslink.websocket import LinkProtocol

_LOG = logging.getLogger(__name__)


class SessionGuard(LinkProtocol):
    """Lets one browser in. `accept(token) -> bool` decides; `takeover`: a new good token replaces the owner.

    `on_owner_left()` is called when the owner's websocket closes (autosave, grace period).
    """

    def __init__(self, accept, takeover=False, on_owner_left=None):
        super().__init__()
        self._accept = accept
        self.takeover = takeover
        self.on_owner_left = on_owner_left
        self.owner = None
        self.refused = 0  # hello attempts refused (tests, logs)
        self.handler = None  # wslink's websocket handler, set on server bind (to disconnect a replaced owner)

    async def validateToken(self, token, client_id):
        """wslink's hook: True lets this client in."""
        if self.owner is not None and self.owner != client_id and not self.takeover:
            self.refused += 1
            _LOG.warning("Refused a second browser: this server serves one browser at a time")
            return False
        accepted = self._accept(token)
        if asyncio.iscoroutine(accepted):
            accepted = await accepted
        if not accepted:
            self.refused += 1
            return False
        previous, self.owner = self.owner, client_id
        if previous is not None and previous != client_id:
            self._disconnect(previous)
        return True

    def onClose(self, client_id):
        if client_id == self.owner:
            self.owner = None
            if self.on_owner_left is not None:
                self.on_owner_left()

    def _disconnect(self, client_id):
        handler = self.handler
        if handler is None:
            return
        handler.authentified_client_ids.discard(client_id)
        connection = handler.connections.get(client_id)
        if connection is not None:
            asyncio.ensure_future(connection.close(message=b"Opened in another window"))


def shared_secret_check(expected):
    """`accept` for a fixed secret, compared in constant time."""
    def accept(token):
        return isinstance(token, str) and hmac.compare_digest(token.encode(), str(expected).encode())
    return accept


def websocket_handler(wslink_server):
    """The websocket handler of a started wslink aiohttp server (from trame's `on_server_bind`)."""
    handlers = getattr(wslink_server, "_ws_handlers", None) or []
    return handlers[0] if handlers else getattr(wslink_server, "_ws_handler", None)
