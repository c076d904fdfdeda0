// Progressive enhancement only: the portal works without it. A live character counter on long text,
// and focus moved to the error summary when a page shows one.
(function () {
  "use strict";
  document.querySelectorAll("textarea[data-counter]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    if (!out) return;
    var template = out.getAttribute("data-template") || "{count}";
    var update = function () {
      out.textContent = template.replace("{count}", area.value.length.toLocaleString());
    };
    area.addEventListener("input", update);
    update();
  });
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
