// Small progressive enhancements: upload with progress, live status polling, sortable tables, confirmations.
"use strict";

const csrf = () => document.body.dataset.csrf || "";

function badge(status) {
  const span = document.createElement("span");
  span.className = "badge " + status;
  span.textContent = status;
  return span;
}

function fmt(x) {
  return x === null || x === undefined ? "–" : String(Math.round(x * 1000) / 1000);
}

function setupUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const msg = document.getElementById("upload-message");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = document.getElementById("file").files[0];
    if (!file) return;
    const maxBytes = Number(form.dataset.maxMib) * 1024 * 1024;
    if (file.size > maxBytes) { msg.textContent = "The file is larger than " + form.dataset.maxMib + " MiB."; return; }
    const data = new FormData(form);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/submissions");
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    bar.hidden = false; bar.value = 0; msg.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) {
        msg.textContent = "Uploaded as submission " + body.id + (body.late ? " (late)" : "") + "; grading…";
        window.location.reload();
      } else {
        msg.textContent = "Upload failed: " + (body.detail && typeof body.detail === "string" ? body.detail : xhr.status);
        bar.hidden = true;
      }
    });
    xhr.addEventListener("error", () => { msg.textContent = "Upload failed: network error."; bar.hidden = true; });
    xhr.send(data);
  });
}

function setupPolling() {
  const rows = () => Array.from(document.querySelectorAll("[data-submission]"))
    .filter((el) => el.dataset.status === "queued" || el.dataset.status === "running");
  if (rows().length === 0) return;
  const tick = async () => {
    const pending = rows();
    if (pending.length === 0) return;
    let changed = false;
    for (const el of pending) {
      try {
        const r = await fetch("/api/submissions/" + el.dataset.submission, { headers: { Accept: "application/json" } });
        if (!r.ok) continue;
        const s = await r.json();
        if (s.status !== el.dataset.status) {
          el.dataset.status = s.status;
          changed = true;
          const cell = el.querySelector(".status") || document.getElementById("status");
          if (cell) { cell.replaceChildren(badge(s.status)); }
          const score = el.querySelector(".score");
          if (score && s.total !== null) score.textContent = fmt(s.total) + " / " + fmt(s.max_total);
        }
      } catch (e) { /* retry on the next tick */ }
    }
    if (changed && document.getElementById("summary")) { window.location.reload(); return; }
    if (rows().length > 0) setTimeout(tick, 1500);
  };
  setTimeout(tick, 1000);
}

function setupSorting() {
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th[data-sort]").forEach((th, index) => {
      th.addEventListener("click", (ev) => {
        if (ev.target.closest("form")) return;
        const asc = !th.classList.contains("sorted-asc");
        table.querySelectorAll("th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        const body = table.tBodies[0];
        const key = (tr) => {
          const td = tr.children[index];
          const v = td ? (td.dataset.value ?? td.textContent.trim()) : "";
          return th.dataset.sort === "num" ? Number(v) : v.toLowerCase();
        };
        const rows = Array.from(body.rows).filter((r) => !r.classList.contains("empty"));
        rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (asc ? 1 : -1));
        rows.forEach((r) => body.appendChild(r));
      });
    });
  });
}

// Destructive or visible-to-students actions ask first: <form data-confirm="Regrade all of hw1?">.
function setupConfirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => { if (!window.confirm(form.dataset.confirm)) ev.preventDefault(); });
  });
}

// Grading by question: a reusable comment fills the comment box; j / k / n follow the links that carry the key.
function setupGradingByQuestion() {
  const box = document.getElementById("comment");
  document.querySelectorAll("button[data-comment]").forEach((button) => {
    button.addEventListener("click", () => {
      box.value = box.value.trim() ? box.value.trimEnd() + "\n" + button.dataset.comment : button.dataset.comment;
      box.focus();
    });
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.closest("input, textarea, select")) return;
    const link = document.querySelector('a[data-key="' + ev.key + '"]');
    if (link) { ev.preventDefault(); window.location.href = link.href; }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupUpload(); setupPolling(); setupSorting(); setupConfirmations(); setupGradingByQuestion();
});
