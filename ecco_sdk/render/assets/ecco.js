(function () {
  "use strict";
  var root = document.getElementById("__ID__");
  if (!root || root.getAttribute("data-ecco-live")) { return; }
  var state;
  try { state = JSON.parse(root.getAttribute("data-ecco-state") || "{}"); } catch (err) { return; }
  root.setAttribute("data-ecco-live", "1");
  root.classList.add("ecco-js");

  function all(sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }

  function paintText(name, cells) {
    all('[data-ecco-text="' + name + '"] .ecco-tok').forEach(function (tok) {
      var cell = cells[+tok.getAttribute("data-i")] || ["", "", "", ""];
      tok.querySelector(".ecco-tt").style.cssText = cell[0];
      var val = tok.querySelector(".ecco-val");
      if (val) { val.textContent = cell[1]; }
      var bar = tok.querySelector(".ecco-vbar > span");
      if (bar) { bar.style.cssText = cell[2]; }
      tok.classList.toggle("ecco-target", cell[3] === "t");
      tok.classList.toggle("ecco-after", cell[3] === "a");
    });
  }

  function setCaption(html) {
    var cap = root.querySelector(".ecco-live-caption");
    if (cap) { cap.innerHTML = html; }
  }

  function activate(el, fn) {
    el.addEventListener("click", fn);
    el.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); fn(); }
    });
  }

  if (state.kind === "saliency") {
    var byPos = {};
    state.targets.forEach(function (t, j) { if (!(t.pos in byPos)) { byPos[t.pos] = j; } });
    var pick = function (j) {
      if (j === state.selected) { return; }
      state.selected = j;
      paintText("main", state.targets[j].cells);
      setCaption(state.targets[j].caption);
    };
    all('[data-ecco-text="main"] .ecco-tok').forEach(function (tok) {
      var pos = +tok.getAttribute("data-i");
      if (!(pos in byPos)) { return; }
      tok.classList.add("ecco-pick");
      tok.setAttribute("tabindex", "0");
      var go = function () { pick(byPos[pos]); };
      tok.addEventListener("mouseenter", go);
      activate(tok, go);
    });
  }

  if (state.kind === "factors") {
    var rows = all(".ecco-frow[data-f]");
    var select = function (f) {
      state.selected = f;
      paintText("factor", state.factors[f].cells);
      setCaption(state.factors[f].caption);
      rows.forEach(function (r) {
        var on = +r.getAttribute("data-f") === f;
        r.classList.toggle("ecco-sel", on);
        r.setAttribute("aria-pressed", on ? "true" : "false");
      });
    };
    rows.forEach(function (row) {
      row.setAttribute("tabindex", "0");
      row.setAttribute("role", "button");
      activate(row, function () { select(+row.getAttribute("data-f")); });
    });
  }
})();
