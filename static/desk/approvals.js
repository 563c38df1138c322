/* The approvals queue: pending AI drafts with their thread's context; approve, edit then
 * approve, or reject with a review and choose regenerate or a person. Keyboard-first:
 * j/k move, a approves, e edits, r rejects, o opens the thread, ? lists the shortcuts. */
(function () {
  "use strict";
  var el = Desk.el;

  var state = {
    drafts: Desk.data.drafts || [],
    selected: null,
    threads: {}, // id → thread_info, for drafts that arrive live
    contextFor: null,
  };
  state.drafts.forEach(function (draft) {
    state.threads[draft.thread] = draft.thread_info;
  });

  var listNode = document.getElementById("draft-list");
  var empty = document.getElementById("approvals-empty");
  var count = document.getElementById("approvals-count");
  var review = document.getElementById("review");
  var text = document.getElementById("draft-text");
  var approveForm = document.getElementById("approve-form");
  var rejectForm = document.getElementById("reject-form");
  var rejectButton = document.getElementById("reject-button");
  var reviewText = document.getElementById("reject-review");
  var dialog = document.getElementById("shortcuts");

  function info(draft) {
    return draft.thread_info || state.threads[draft.thread] || { subject: "", customer: "Customer", id: draft.thread };
  }

  function renderList() {
    var ids = state.drafts.map(function (d) { return d.id; });
    if (state.selected && ids.indexOf(state.selected) < 0) state.selected = null;
    if (!state.selected && ids.length) state.selected = ids[0];
    Desk.replace(
      listNode,
      state.drafts.map(function (draft) {
        var thread = info(draft);
        var selected = draft.id === state.selected;
        var item = el(
          "li",
          { role: "option", id: "draft-" + draft.id, "aria-selected": selected ? "true" : "false", class: selected ? "selected" : "", dataset: { draft: draft.id } },
          el("span", { class: "subject" }, thread.subject || "(no subject)"),
          el("span", { class: "customer" }, thread.customer),
          el("span", { class: "preview" }, draft.content.slice(0, 140)),
          el(
            "span",
            { class: "meta" },
            draft.confidence !== null && draft.confidence !== undefined ? "confidence " + Math.round(draft.confidence * 100) + "% · " : "",
            el("span", { dataset: { ago: draft.created_at } }, Desk.ago(draft.created_at))
          )
        );
        item.addEventListener("click", function () {
          select(draft.id);
        });
        return item;
      })
    );
    if (state.selected) listNode.setAttribute("aria-activedescendant", "draft-" + state.selected);
    else listNode.removeAttribute("aria-activedescendant");
    empty.hidden = state.drafts.length > 0;
    listNode.hidden = state.drafts.length === 0;
    count.textContent = state.drafts.length + " waiting";
    renderReview();
  }

  function current() {
    return state.drafts.filter(function (d) { return d.id === state.selected; })[0] || null;
  }

  function select(id) {
    if (id === state.selected) return;
    state.selected = id;
    closeReject();
    renderList();
    var node = document.getElementById("draft-" + id);
    if (node) node.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var ids = state.drafts.map(function (d) { return d.id; });
    var index = ids.indexOf(state.selected);
    if (index < 0) return;
    var next = ids[Math.min(ids.length - 1, Math.max(0, index + step))];
    select(next);
  }

  function renderReview() {
    var draft = current();
    if (!draft) {
      review.hidden = true;
      return;
    }
    review.hidden = false;
    var thread = info(draft);
    var heading = document.getElementById("review-title");
    if (review.dataset.draft !== draft.id) {
      review.dataset.draft = draft.id;
      text.value = draft.content;
      text.readOnly = true;
      heading.textContent = thread.subject || "(no subject)";
      Desk.replace(
        document.getElementById("review-meta"),
        thread.customer,
        " · ",
        el("a", { href: "/desk/threads/" + draft.thread + "/", id: "open-thread" }, "Open the thread"),
        " · drafted ",
        el("span", { dataset: { ago: draft.created_at } }, Desk.ago(draft.created_at))
      );
      loadContext(draft);
    }
    markEdited();
  }

  function markEdited() {
    var draft = current();
    document.getElementById("draft-edited").textContent = draft && text.value !== draft.content ? "(edited)" : "";
  }
  text.addEventListener("input", markEdited);

  function loadContext(draft) {
    var box = document.getElementById("review-context");
    Desk.replace(box, el("li", { class: "muted" }, "Loading the conversation…"));
    var seq = draft.message ? draft.message.seq : null;
    var path = "/desk/threads/" + draft.thread + "/messages/?limit=12" + (seq ? "&before=" + seq : "&before=2147483647");
    state.contextFor = draft.id;
    Desk.api("GET", path)
      .then(function (page) {
        if (state.contextFor !== draft.id) return;
        var visible = page.results.filter(function (m) { return m.visibility === "public" || m.visibility === "internal"; });
        Desk.replace(
          box,
          visible.length
            ? visible.map(function (m) {
                var author = m.author || {};
                return el(
                  "li",
                  { class: "line msg msg-" + author.kind + " vis-" + m.visibility },
                  el("div", { class: "msg-head" }, el("span", { class: "author" }, author.name || author.kind), m.visibility === "internal" ? Desk.badge("Internal note", "internal") : null, el("time", { class: "when", datetime: m.created_at }, Desk.time(m.created_at))),
                  el("div", { class: "msg-body" }, m.content)
                );
              })
            : el("li", { class: "muted" }, "No earlier messages.")
        );
      })
      .catch(function (error) {
        Desk.replace(box, el("li", { class: "muted" }, "Could not load the conversation: " + error.message));
      });
  }

  function removeDraft(id) {
    var ids = state.drafts.map(function (d) { return d.id; });
    var index = ids.indexOf(id);
    state.drafts = state.drafts.filter(function (d) { return d.id !== id; });
    if (state.selected === id) {
      var next = state.drafts[Math.min(index, state.drafts.length - 1)];
      state.selected = next ? next.id : null;
    }
    renderList();
    if (state.selected) listNode.focus();
  }

  // --- Actions -------------------------------------------------------------------------

  function approve() {
    var draft = current();
    if (!draft) return;
    var body = text.value !== draft.content ? { content: text.value } : {};
    if (!text.value.trim()) return Desk.toast("The reply is empty.", "error");
    Desk.act(document.getElementById("approve-button"), function () {
      return Desk.api("POST", "/desk/approvals/" + draft.id + "/approve/", body);
    }, body.content ? "Edited reply sent." : "Reply sent.")
      .then(function () {
        removeDraft(draft.id);
      })
      .catch(function (error) {
        if (error.status === 409 || error.status === 404) removeDraft(draft.id);
      });
  }

  function edit() {
    if (!current()) return;
    text.readOnly = false;
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  }

  function openReject() {
    if (!current()) return;
    rejectForm.hidden = false;
    rejectButton.setAttribute("aria-expanded", "true");
    reviewText.focus();
  }

  function closeReject() {
    rejectForm.hidden = true;
    rejectButton.setAttribute("aria-expanded", "false");
    reviewText.value = "";
    // Each draft starts from the default: handing a thread to a person is a choice.
    rejectForm.elements.next.value = "regenerate";
  }

  function reject() {
    var draft = current();
    if (!draft) return;
    if (!reviewText.value.trim()) {
      reviewText.focus();
      return Desk.toast("Write a review: the AI uses it to do better.", "error");
    }
    var next = rejectForm.elements.next.value;
    Desk.act(document.getElementById("reject-submit"), function () {
      return Desk.api("POST", "/desk/approvals/" + draft.id + "/reject/", { review: reviewText.value, next: next });
    }, next === "human" ? "Rejected; a person will answer." : "Rejected; the AI writes a new draft.")
      .then(function () {
        closeReject();
        removeDraft(draft.id);
      })
      .catch(function (error) {
        if (error.status === 409 || error.status === 404) removeDraft(draft.id);
      });
  }

  approveForm.addEventListener("submit", function (event) {
    event.preventDefault();
    approve();
  });
  document.getElementById("edit-button").addEventListener("click", edit);
  rejectButton.addEventListener("click", function () {
    if (rejectForm.hidden) openReject();
    else closeReject();
  });
  rejectForm.addEventListener("submit", function (event) {
    event.preventDefault();
    reject();
  });
  document.getElementById("reject-cancel").addEventListener("click", function () {
    closeReject();
    listNode.focus();
  });
  document.getElementById("shortcuts-open").addEventListener("click", function () {
    dialog.showModal();
  });

  // --- Keyboard --------------------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT";
    if (dialog.open) return;
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (target === reviewText) reject();
        else if (target === text) approve();
      } else if (event.key === "Escape") {
        if (target === reviewText) closeReject();
        target.blur();
        listNode.focus();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key) {
      case "j":
      case "ArrowDown":
        event.preventDefault();
        move(1);
        break;
      case "k":
      case "ArrowUp":
        event.preventDefault();
        move(-1);
        break;
      case "a":
        event.preventDefault();
        approve();
        break;
      case "e":
        event.preventDefault();
        edit();
        break;
      case "r":
        event.preventDefault();
        openReject();
        break;
      case "o":
        if (current()) window.location.href = "/desk/threads/" + current().thread + "/";
        break;
      case "?":
        dialog.showModal();
        break;
      case "Escape":
        closeReject();
        break;
    }
  });

  // --- Live --------------------------------------------------------------------------------

  var refreshTurn = Desk.newest();
  function refresh() {
    var ticket = refreshTurn();
    return Desk.api("GET", "/desk/approvals/?status=pending&kind=approval&limit=100").then(function (page) {
      var drafts = page.results.slice().reverse(); // oldest first: the review queue
      var missing = drafts.filter(function (d) { return !state.threads[d.thread]; });
      return Promise.all(
        missing.map(function (d) {
          return Desk.api("GET", "/desk/threads/" + d.thread + "/").then(function (thread) {
            state.threads[d.thread] = {
              id: thread.id,
              subject: thread.subject,
              customer: (thread.customer && (thread.customer.name || thread.customer.email)) || "Customer",
            };
          });
        })
      ).then(function () {
        if (!refreshTurn.current(ticket)) return;
        state.drafts = drafts;
        renderList();
      });
    });
  }
  var soon = Desk.debounce(refresh, 300);
  Desk.live.on("approval.created", soon);
  Desk.live.on("approval.updated", soon);
  Desk.live.onConnect(soon);
  Desk.poll(refresh, 10000, 4000);

  renderList();
  if (state.drafts.length) listNode.focus();
})();
