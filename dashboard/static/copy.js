// The key page's "Copy secret" button (a file, not inline: the
// Content-Security-Policy allows scripts from minilog itself only).
(function () {
  var b = document.getElementById("copy");
  if (!navigator.clipboard) return;
  b.hidden = false;
  b.addEventListener("click", function () {
    navigator.clipboard.writeText(document.getElementById("secret").textContent).then(function () { b.textContent = "Copied"; });
  });
})();
