// blockhost serve: keeps the status page current and sends decisions
// without leaving it. The page works without this script: it is
// server-rendered, refreshes itself by <meta> and posts plain forms.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var dot = document.getElementById("live-dot");
  var busy = false;

  // A person typing a comment must not lose it to a refresh.
  function typing() {
    var a = document.activeElement;
    if (a && a.name === "comment") return true;
    var inputs = live.querySelectorAll("input[name=comment]");
    for (var i = 0; i < inputs.length; i++) if (inputs[i].value !== "") return true;
    return false;
  }

  function refresh(force) {
    if (busy || (!force && typing())) return Promise.resolve();
    busy = true;
    return fetch("/?part=live", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { live.innerHTML = html; if (dot) dot.classList.remove("stale"); })
      .catch(function () { if (dot) dot.classList.add("stale"); })
      .finally(function () { busy = false; });
  }

  live.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList.contains("decide")) return;
    ev.preventDefault();
    var button = ev.submitter;
    var body = { approved: button && button.value === "true", comment: form.comment.value };
    var buttons = form.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    fetch(form.getAttribute("action"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (e) { alert(e.error ? e.error.message : "the decision was not recorded"); });
    }).catch(function (e) { alert("the decision was not sent: " + e); })
      .finally(function () { form.comment.value = ""; refresh(true); });
  });

  setInterval(function () { refresh(false); }, 2000);
})();
