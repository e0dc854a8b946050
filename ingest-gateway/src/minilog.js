/* minilog browser error reporter. Include it with the token your server made:
   <script src="https://LOGS.EXAMPLE/minilog.js" data-token="KEYID.EXPIRY.SIG"></script>
   Optional: data-endpoint (default: /api/v1/browser beside this script),
   data-max (reports per page view, default 5). It reports window errors and
   unhandled promise rejections, skips the cross-origin "Script error.", and
   never throws. */
(function () {
  try {
    var script = document.currentScript;
    if (!script) return;
    var token = script.getAttribute("data-token");
    if (!token) return;
    var endpoint = script.getAttribute("data-endpoint");
    if (!endpoint) endpoint = script.src.replace(/\/minilog\.js(\?.*)?$/, "") + "/api/v1/browser";
    var max = parseInt(script.getAttribute("data-max") || "5", 10);
    if (!(max >= 0)) max = 5;
    var sent = 0;
    var seen = {};
    var text = function (v, n) {
      try {
        v = v === undefined || v === null ? "" : String(v);
      } catch (e) {
        v = "";
      }
      return v.length > n ? v.slice(0, n) : v;
    };
    var send = function (r) {
      try {
        var message = text(r.message, 4096);
        if (!message || /^(Uncaught )?Script error\.?$/.test(message)) return;
        if (sent >= max) return;
        var id = message + "|" + r.file + "|" + r.line + "|" + r.column;
        if (seen[id]) return;
        seen[id] = true;
        sent += 1;
        var body = JSON.stringify({
          token: token,
          message: message,
          kind: r.kind,
          file: text(r.file, 1000),
          line: r.line || undefined,
          column: r.column || undefined,
          stack: text(r.stack, 4000),
          url: text(location.href, 1000),
          user_agent: text(navigator.userAgent, 500)
        });
        // text/plain keeps it a simple CORS request (no preflight).
        var type = "text/plain;charset=UTF-8";
        if (window.fetch) {
          window.fetch(endpoint, {
            method: "POST", body: body, mode: "cors", credentials: "omit", keepalive: true,
            headers: { "Content-Type": type }
          })["catch"](function () {});
        } else if (window.XMLHttpRequest) {
          var x = new XMLHttpRequest();
          x.open("POST", endpoint, true);
          x.setRequestHeader("Content-Type", type);
          x.send(body);
        }
      } catch (e) {}
    };
    window.addEventListener("error", function (ev) {
      try {
        // Failed images and scripts fire plain events without a message.
        if (!ev || !ev.message) return;
        send({
          kind: "error",
          message: ev.message,
          file: ev.filename,
          line: ev.lineno,
          column: ev.colno,
          stack: ev.error && ev.error.stack
        });
      } catch (e) {}
    });
    window.addEventListener("unhandledrejection", function (ev) {
      try {
        var reason = ev && ev.reason;
        var message = reason && reason.message ? reason.message : text(reason, 4096);
        send({
          kind: "unhandledrejection",
          message: "Unhandled rejection: " + message,
          stack: reason && reason.stack
        });
      } catch (e) {}
    });
  } catch (e) {}
})();
