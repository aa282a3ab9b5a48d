"""The page of a team session process: trame's index.html with a script that never leaves a dead page.

trame's client shows the state's `trame__template_error` when a connection that was up closes, but when the
first connection fails (wslink refuses the hello: the one-time ticket expired while a loaded host was still
serving the page, or was already used; or the websocket cannot open) it only writes its error text, e.g.
"try/catch on connect()", into the page. The script watches the client's connection events: a failure before
the state arrived sends the browser back to the gateway (`RETURNS` times in a row at most), which, with the
login cookie, sends it here again with a fresh ticket, or shows the login page; after that it shows the
"no longer connected" message with a link back to the login page. A connection that came up resets the count.
"""
import html
import json
import os

RETURNS = 2
STORAGE_KEY = "mva-session-returns"

SCRIPT = """<script>
(function () {
  var gateway = %(gateway)s, key = %(key)s, returns = %(returns)d, trame, client, done = false;
  function shown(text) {
    var box = document.createElement("div");
    box.id = "mva-connect-failed";
    box.style.cssText = "position:fixed;inset:0;background:#fff;padding:2em;font-family:sans-serif;z-index:9999";
    box.innerHTML = %(message)s + " <a id='mva-back-to-login'>Back to the login page</a>";
    box.querySelector("a").href = gateway;
    box.appendChild(document.createElement("pre")).textContent = text || "";
    document.body.appendChild(box);
  }
  function failed(event) {
    if (done || (trame && trame.state)) return;  // once connected, trame shows trame__template_error
    done = true;
    var count = Number(sessionStorage.getItem(key) || 0);
    if (count < returns) {
      sessionStorage.setItem(key, String(count + 1));
      window.location.replace(gateway);
      return;
    }
    sessionStorage.removeItem(key);
    var reason = event && event.response && event.response.error;
    setTimeout(function () { shown(reason ? String(reason.message || reason) : ""); }, 0);
  }
  function watch(value) {
    client = value;
    if (!value || !value.onConnectionError) return;
    value.onConnectionError(failed);
    value.onConnectionClose(failed);
    if (value.onConnectionReady) value.onConnectionReady(function () { sessionStorage.removeItem(key); });
  }
  Object.defineProperty(window, "trame", {configurable: true, get: function () { return trame; },
    set: function (value) {
      trame = value;
      if (!value || typeof value !== "object") return;
      watch(value.client);
      Object.defineProperty(value, "client", {configurable: true, enumerable: true,
        get: function () { return client; }, set: watch});
    }});
})();
</script>
"""

MESSAGE = "This page could not connect to its annotation session (the server may be busy, or the sign-in link " \
          "expired)."


def reconnect_script(gateway_url, returns=RETURNS):
    """The <script> element (text) for a session page whose gateway is at `gateway_url`."""
    def literal(value):  # a JS string that cannot end the <script> element
        return json.dumps(str(value)).replace("</", "<\\/")
    return SCRIPT % {"gateway": literal(gateway_url), "key": literal(STORAGE_KEY), "returns": int(returns),
                     "message": literal(html.escape(MESSAGE))}


def with_reconnect(index_html, gateway_url, returns=RETURNS):
    """trame's index.html with the script at the end of its <head>: it runs while the page is parsed, before
    trame's own module script (deferred) creates `window.trame`. Raises ValueError for a page without </head>."""
    at = index_html.find("</head>")
    if at < 0:
        raise ValueError("trame's index.html has no </head>")
    return index_html[:at] + reconnect_script(gateway_url, returns) + index_html[at:]


def trame_index_html():
    """The text of trame's vue3 client page (the one a session process serves)."""
    from trame_client.module.vue3 import www
    with open(os.path.join(www, "index.html"), encoding="utf-8") as stream:
        return stream.read()
