"use strict";
// The labelling page: ask the server for an image, send a label or a skip, repeat.

const $ = (id) => document.getElementById(id);
// One id per tab (sessionStorage survives a reload, not a new tab): the server holds the
// image it showed this tab, so two tabs get two images and a reload gets the same one back.
const client = sessionStorage.getItem("kisbench-client") ||
  `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
sessionStorage.setItem("kisbench-client", client);
let current = null;
let busy = false;

function say(text, kind = "ok") {
  $("message").textContent = text;
  $("message").className = kind;
}

function showProgress(p) {
  $("bar").max = Math.max(p.target, 1);
  $("bar").value = Math.min(p.labelled, p.target);
  const reached = p.labelled >= p.target ? " (target reached)" : "";
  $("progress-text").textContent =
    `${p.labelled} / ${p.target} labelled${reached} · you ${p.mine} · ` +
    `${p.skipped} skipped · ${p.remaining} images left`;
}

function setBusy(value) {
  busy = value;
  for (const id of ["save", "skip"]) $(id).disabled = value;
}

async function loadNext(message, kind = "ok") {
  const response = await fetch(`/api/next?client=${encodeURIComponent(client)}`);
  const data = await response.json();
  $("collection").textContent = data.collection;
  $("annotator").textContent = data.annotator;
  showProgress(data.progress);
  current = data.id;
  if (current === null) {
    document.querySelector("main").hidden = true;
    $("done").hidden = false;
    return;
  }
  $("image").src = data.image;
  $("image-id").textContent = current;
  for (const id of ["short", "long", "reason"]) $(id).value = "";
  say(message || "", kind);
  $("short").focus();
}

async function send(url, payload, doneText) {
  if (busy || current === null) return;
  setBusy(true);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id: current, ...payload }),
    });
    const data = await response.json();
    if (response.ok) {
      await loadNext(doneText);
    } else if (response.status === 409) {
      await loadNext(`${data.error}: here is another image`, "error");
    } else {
      say(data.error || `error ${response.status}`, "error");
    }
  } catch (err) {
    say(`could not reach the server (${err.message}); is it still running?`, "error");
  } finally {
    setBusy(false);
  }
}

function save() {
  const short = $("short").value.trim();
  const long = $("long").value.trim();
  if (!short) { say("write a short label first", "error"); $("short").focus(); return; }
  if (!long) { say("write a long label first", "error"); $("long").focus(); return; }
  send("/api/label", { short_label: short, long_label: long }, `saved ${current}`);
}

function skip() {
  const reason = $("reason").value.trim();
  if (!reason) { say("give a reason to skip", "error"); $("reason").focus(); return; }
  send("/api/skip", { reason }, `skipped ${current}`);
}

$("label-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
$("skip-form").addEventListener("submit", (e) => { e.preventDefault(); skip(); });

$("short").addEventListener("keydown", (e) => {
  // Enter moves on to the long label, unless that is already written.
  if (e.key === "Enter" && !e.ctrlKey && !$("long").value.trim()) {
    e.preventDefault();
    $("long").focus();
  }
});

$("long").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
});

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented) return;  // a field's own handler dealt with it
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
  if (e.key === "Escape") { e.preventDefault(); $("reason").focus(); }
});

loadNext().catch((err) => say(`could not reach the server (${err.message})`, "error"));
