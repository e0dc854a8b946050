// Copy buttons: a `<button data-copy="ID">` copies the text of element ID
// (a file, not inline: the Content-Security-Policy allows scripts from
// minilog itself only). Without the clipboard API the buttons stay hidden.
(function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    var source = document.getElementById(b.getAttribute("data-copy"));
    if (!source) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () { b.textContent = "Copied"; });
    });
  });
})();
