/* The inbox: threads filtered by status, responder, assignee and queue, with badges for open
 * escalations, pending approvals and pending questions, SLA countdowns, and live updates.
 * The first page comes embedded in the page; every refresh reads GET /api/v1/desk/threads/. */
(function () {
  "use strict";
  var el = Desk.el;
  var form = document.getElementById("filters");
  var rows = document.getElementById("inbox-rows");
  var empty = document.getElementById("inbox-empty");
  var more = document.getElementById("load-more");
  var count = document.getElementById("inbox-count");
  var PAGE = 50;

  var state = {
    threads: Desk.data.threads || [],
    next: null,
    hasMore: !!Desk.data.has_more,
    seen: {},
  };
  state.threads.forEach(function (thread) {
    state.seen[thread.id] = true;
  });

  // --- Filters ----------------------------------------------------------------------

  // The queue select is there only when queues exist.
  var SELECTS = ["status", "responder", "assignee", "queue"].filter(function (name) {
    return !!form.elements[name];
  });

  function fillForm(filters) {
    SELECTS.concat(["q"]).forEach(function (name) {
      form.elements[name].value = filters[name] || "";
    });
    form.elements.has_open_escalation.checked = filters.has_open_escalation === "true";
  }

  function currentFilters() {
    var filters = {};
    SELECTS.forEach(function (name) {
      if (form.elements[name].value) filters[name] = form.elements[name].value;
    });
    var q = form.elements.q.value.trim();
    if (q) filters.q = q;
    if (form.elements.has_open_escalation.checked) filters.has_open_escalation = "true";
    return filters;
  }

  function query(filters, limit) {
    var params = new URLSearchParams(filters);
    if (limit) params.set("limit", String(limit));
    return params.toString();
  }

  // --- Rendering --------------------------------------------------------------------

  function responderCell(thread) {
    if (thread.responder === "ai") return el("td", { "data-label": "Responder" }, Desk.badge("AI", "ai"));
    var who = thread.assignee
      ? thread.assignee.id === Desk.me.id
        ? "Me"
        : thread.assignee.name
      : "Unassigned";
    return el("td", { "data-label": "Responder" }, Desk.badge("Human", "human"), " ", el("span", { class: "who" }, who));
  }

  function needsCell(thread) {
    var cell = el("td", { class: "needs" });
    var escalation = thread.open_escalation;
    if (escalation) {
      var claimed = escalation.status === "claimed";
      cell.appendChild(
        Desk.badge(
          claimed ? "Escalation · " + (escalation.claimed_by ? escalation.claimed_by.name : "claimed") : "Escalation",
          claimed ? "escalation-claimed" : "escalation",
          Desk.label.source[escalation.source] || escalation.source
        )
      );
      if (escalation.queue) cell.appendChild(el("span", { class: "queue" }, escalation.queue.name));
    }
    if (thread.pending_approvals) {
      cell.appendChild(Desk.badge(thread.pending_approvals + " to approve", "approval"));
    }
    if (thread.pending_human_requests) {
      cell.appendChild(Desk.badge(thread.pending_human_requests + " question" + (thread.pending_human_requests > 1 ? "s" : ""), "question"));
    }
    if (thread.priority === "high" || thread.priority === "urgent") {
      cell.appendChild(Desk.badge(thread.priority, "priority-" + thread.priority));
    }
    return cell;
  }

  function row(thread) {
    var customer = thread.customer || {};
    var name = customer.name || customer.email || "Customer";
    var sla = thread.sla_due_at || (thread.open_escalation && thread.open_escalation.sla_due_at);
    var tr = el(
      "tr",
      { dataset: { thread: thread.id }, class: state.seen[thread.id] ? "" : "is-new" },
      el(
        "td",
        { class: "conversation" },
        el("a", { href: "/desk/threads/" + thread.id + "/", class: "subject" }, thread.subject || "(no subject)"),
        el("span", { class: "customer" }, name)
      ),
      el("td", { "data-label": "Status" }, el("span", { class: "status status-" + thread.status }, Desk.label.status[thread.status] || thread.status)),
      responderCell(thread),
      needsCell(thread),
      el("td", { "data-label": "SLA" }, Desk.sla(sla)),
      el("td", { "data-label": "Updated" }, el("span", { dataset: { ago: thread.updated_at }, title: new Date(thread.updated_at).toLocaleString() }, Desk.ago(thread.updated_at)))
    );
    return tr;
  }

  function render() {
    var fresh = [];
    Desk.clear(rows);
    state.threads.forEach(function (thread) {
      if (!state.seen[thread.id]) fresh.push(thread);
      rows.appendChild(row(thread));
      state.seen[thread.id] = true;
    });
    empty.hidden = state.threads.length > 0;
    more.hidden = !state.hasMore;
    count.textContent = state.threads.length + (state.hasMore ? "+" : "") + " thread" + (state.threads.length === 1 ? "" : "s");
    fresh.forEach(function (thread) {
      if (thread.open_escalation && thread.open_escalation.status === "open") {
        Desk.toast("New escalation: " + (thread.subject || "a thread"), "warning");
      }
    });
  }

  // --- Loading ----------------------------------------------------------------------

  var loading = null;
  var refreshTurn = Desk.newest();

  function refresh() {
    // Re-read as many rows as are shown, so a refresh never shortens the list.
    var limit = Math.min(200, Math.max(PAGE, state.threads.length));
    var filters = currentFilters();
    var ticket = refreshTurn();
    loading = Desk.api("GET", "/desk/threads/?" + query(filters, limit)).then(function (page) {
      if (JSON.stringify(filters) !== JSON.stringify(currentFilters())) return;
      if (!refreshTurn.current(ticket)) return;
      state.threads = page.results;
      state.next = page.next;
      state.hasMore = !!page.next;
      render();
    });
    return loading;
  }

  more.addEventListener("click", function () {
    if (!state.next) return;
    Desk.act(more, function () {
      return Desk.api("GET", state.next).then(function (page) {
        var known = {};
        state.threads.forEach(function (t) {
          known[t.id] = true;
        });
        page.results.forEach(function (t) {
          if (!known[t.id]) {
            state.seen[t.id] = true;
            state.threads.push(t);
          }
        });
        state.next = page.next;
        state.hasMore = !!page.next;
        render();
      });
    });
  });

  function filtersChanged() {
    var filters = currentFilters();
    var search = query(filters);
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
    state.seen = {};
    state.threads = [];
    refresh().then(function () {
      state.threads.forEach(function (t) {
        state.seen[t.id] = true;
      });
      Array.prototype.forEach.call(rows.querySelectorAll(".is-new"), function (tr) {
        tr.classList.remove("is-new");
      });
    });
  }

  form.addEventListener("change", filtersChanged);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    filtersChanged();
  });
  var typingTimer = null;
  form.elements.q.addEventListener("input", function () {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(filtersChanged, 300);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && document.activeElement.tagName !== "INPUT" && document.activeElement.tagName !== "TEXTAREA") {
      event.preventDefault();
      form.elements.q.focus();
    }
  });

  // --- Live ---------------------------------------------------------------------------

  var soon = Desk.debounce(refresh, 250);
  [
    "thread.created",
    "thread.updated",
    "message.created",
    "escalation.created",
    "escalation.updated",
    "approval.created",
    "approval.updated",
    "human_request.created",
    "human_request.updated",
    "sla.breached",
  ].forEach(function (type) {
    Desk.live.on(type, soon);
  });
  Desk.live.onConnect(soon);
  Desk.poll(refresh, 8000, 4000);

  fillForm(Desk.data.filters || {});
  render();
  // The embedded page has no cursor for "Load more"; the API's first page has.
  if (state.hasMore) refresh();
})();
