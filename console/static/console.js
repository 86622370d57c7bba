// Rampart console: progressive enhancements shared by every page. The
// pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Show times in the viewer's zone as a tooltip (the cells stay UTC).
  document.querySelectorAll("[data-time]").forEach(function (el) {
    var d = new Date(el.getAttribute("data-time"));
    if (!isNaN(d)) el.title = d.toLocaleString();
  });
});
