// hubnet staff console: keyboard shortcuts (listed under "?"). Everything works without this file.
(function () {
  "use strict";
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName));
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("table.list tbody tr[data-href]")); }
  function select(delta) {
    var all = rows(); if (!all.length) { return; }
    var current = all.findIndex(function (row) { return row.classList.contains("selected"); });
    var next = Math.max(0, Math.min(all.length - 1, current + delta));
    all.forEach(function (row) { row.classList.remove("selected"); row.removeAttribute("aria-selected"); });
    all[next].classList.add("selected");
    var link = all[next].querySelector("a");
    if (link) { link.focus(); }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var key = event.key;
    if (key === "?") {
      var dialog = document.getElementById("shortcuts");
      if (dialog && dialog.showModal) { dialog.showModal(); event.preventDefault(); }
    } else if (key === "/") {
      var search = document.getElementById("q");
      if (search) { search.focus(); event.preventDefault(); }
    } else if (key === "j") { select(1); } else if (key === "k") { select(-1); }
    else if (key === "u") { window.location.href = "/console/consultations"; }
    else if (/^[1-7]$/.test(key)) {
      var tab = document.querySelector('.tabs a[data-key="' + key + '"]');
      if (tab) { window.location.href = tab.href; }
    }
  });
})();
