/* The thread view: the whole transcript (newest page first, older pages on scroll), the
 * router's decisions and the AI's tool calls as quiet lines, streamed AI text, and the
 * actions: reply or note, copilot suggestion, take over / hand back, claim / resolve the
 * escalation, answer the AI's question, decide a draft. Every action is a REST call. */
(function () {
  "use strict";
  var el = Desk.el;
  var data = Desk.data;
  var threadId = data.thread.id;
  var api = "/desk/threads/" + threadId;

  var state = {
    thread: data.thread,
    messages: {}, // id → message
    order: [], // ids by seq
    firstSeq: null,
    lastSeq: 0,
    hasOlder: !!data.has_older,
    turns: {}, // id → turn line
    assignments: data.assignments || [],
    escalations: data.escalations || [],
    questions: data.human_requests || [],
    drafts: data.drafts || [],
    streaming: {}, // message id → element
    editingSuggestion: null,
  };

  var list = document.getElementById("messages");
  var transcript = document.getElementById("transcript");
  var olderButton = document.getElementById("load-older");

  // --- Transcript -------------------------------------------------------------------

  function authorLabel(message) {
    var author = message.author || {};
    switch (author.kind) {
      case "customer":
        return [el("span", { class: "author" }, author.name || "Customer"), Desk.badge("Customer", "customer")];
      case "ai":
        return [el("span", { class: "author" }, author.name || "AI assistant"), Desk.badge("AI", "ai")];
      case "human":
        return [el("span", { class: "author" }, author.name || "Agent"), Desk.badge("Agent", "human")];
      default:
        return [el("span", { class: "author" }, author.name || "System"), Desk.badge("System", "system")];
    }
  }

  function argumentsText(args) {
    if (!args || typeof args !== "object") return "";
    return Object.keys(args)
      .map(function (key) {
        var value = args[key];
        return key + ": " + (typeof value === "string" ? "“" + value + "”" : JSON.stringify(value));
      })
      .join(", ");
  }

  function quietLine(message, text, details) {
    var node = el(
      "li",
      { class: "line quiet", dataset: { seq: String(message.seq), id: message.id } },
      el("span", { class: "quiet-text" }, text),
      " ",
      el("time", { datetime: message.created_at, class: "when" }, Desk.time(message.created_at))
    );
    if (details) {
      node.appendChild(el("details", null, el("summary", null, "Show"), el("pre", { class: "quiet-detail" }, details)));
    }
    return node;
  }

  function messageNode(message) {
    // The AI's tool calls and their results are quiet lines, not chat bubbles.
    if (message.role === "tool") {
      var answeredBy = message.author && message.author.kind === "human" ? message.author.name : null;
      return answeredBy
        ? quietLine(message, answeredBy + " answered the AI's question: " + message.content)
        : quietLine(message, "Tool result" + (message.tool_call_id ? " (" + message.tool_call_id + ")" : ""), message.content);
    }
    if (message.role === "assistant" && message.tool_calls && message.tool_calls.length) {
      var calls = message.tool_calls
        .map(function (call) {
          return call.name + "(" + argumentsText(call.arguments) + ")";
        })
        .join("; ");
      if (!message.content) return quietLine(message, "The AI called " + calls);
    }
    if (message.role === "system" && message.visibility !== "public") {
      return quietLine(message, message.content);
    }
    var classes = ["line", "msg", "msg-" + (message.author ? message.author.kind : "system"), "vis-" + message.visibility];
    var tags = [];
    if (message.visibility === "internal") tags.push(Desk.badge("Internal note", "internal"));
    if (message.visibility === "draft") tags.push(Desk.badge("Draft · not sent", "draft"));
    if (message.visibility === "rejected") tags.push(Desk.badge("Rejected draft", "rejected"));
    var node = el(
      "li",
      { class: classes.join(" "), dataset: { seq: String(message.seq), id: message.id } },
      el(
        "div",
        { class: "msg-head" },
        authorLabel(message),
        tags,
        el("time", { datetime: message.created_at, class: "when", title: new Date(message.created_at).toLocaleString() }, Desk.time(message.created_at))
      ),
      el("div", { class: "msg-body" }, message.content)
    );
    if (message.tool_calls && message.tool_calls.length) {
      node.appendChild(
        el("p", { class: "quiet-text" }, "Tool calls: " + message.tool_calls.map(function (c) { return c.name + "(" + argumentsText(c.arguments) + ")"; }).join("; "))
      );
    }
    return node;
  }

  var OUTCOME = {
    reply: "answered",
    draft: "wrote a draft for approval",
    escalation: "escalated to a person",
    human_request: "asked a colleague a question",
    human: "left it to the assigned person",
    superseded: "stood down for a newer message",
  };

  function turnNode(turn) {
    var who = turn.kind === "regenerate" ? "Regenerate" : "Routing";
    var decision = turn.decision ? (turn.decision === "ai" ? "AI answers" : turn.decision === "human" ? "a person answers" : "escalate") : "pending";
    var text = who + ": " + decision;
    if (turn.decision_reason) text += " — " + turn.decision_reason;
    if (turn.decision_step) text += " (" + turn.decision_step + ")";
    if (turn.status === "done" && turn.outcome) {
      text += ". The AI " + (OUTCOME[turn.outcome] || turn.outcome);
      if (turn.confidence !== null && turn.confidence !== undefined) text += " (confidence " + turn.confidence.toFixed(2) + ")";
      text += ".";
    }
    else if (turn.status === "waiting") text += ". Waiting for a colleague's answer.";
    else if (turn.status === "running") text += ". Working…";
    else if (turn.status === "queued") text += ". Queued.";
    if (turn.error) text += " Error: " + turn.error;
    return el("li", { class: "line quiet turn", dataset: { turn: turn.id, afterSeq: String(turn.seq || 0) } }, el("span", { class: "quiet-text" }, text));
  }

  function nearBottom() {
    return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 120;
  }

  function scrollToBottom() {
    transcript.scrollTop = transcript.scrollHeight;
  }

  /* Rebuild the list from the state (a few hundred rows at most on screen). */
  function renderMessages() {
    var turnsBySeq = {};
    Object.keys(state.turns).forEach(function (id) {
      var turn = state.turns[id];
      (turnsBySeq[turn.seq || 0] = turnsBySeq[turn.seq || 0] || []).push(turn);
    });
    var fragment = document.createDocumentFragment();
    state.order.forEach(function (id) {
      var message = state.messages[id];
      fragment.appendChild(messageNode(message));
      (turnsBySeq[message.seq] || []).forEach(function (turn) {
        fragment.appendChild(turnNode(turn));
      });
    });
    Object.keys(state.streaming).forEach(function (id) {
      fragment.appendChild(state.streaming[id]);
    });
    Desk.replace(list, fragment);
    olderButton.hidden = !state.hasOlder;
  }

  function addMessages(messages) {
    var added = 0;
    messages.forEach(function (message) {
      if (message.thread && message.thread !== threadId) return;
      if (!state.messages[message.id]) added += 1;
      state.messages[message.id] = message;
      if (state.streaming[message.id]) {
        state.streaming[message.id].remove();
        delete state.streaming[message.id];
      }
    });
    if (!added) return 0;
    state.order = Object.keys(state.messages).sort(function (a, b) {
      return state.messages[a].seq - state.messages[b].seq;
    });
    state.firstSeq = state.messages[state.order[0]].seq;
    state.lastSeq = Math.max(state.lastSeq, state.messages[state.order[state.order.length - 1]].seq);
    return added;
  }

  function addTurns(turns) {
    turns.forEach(function (turn) {
      state.turns[turn.id] = turn;
    });
  }

  // --- Loading ----------------------------------------------------------------------

  var catchingUp = null;

  /* Everything after the newest seq shown, page by page. */
  function catchUp() {
    if (catchingUp) return catchingUp;
    var stick = nearBottom();
    catchingUp = (function page(total) {
      return Desk.api("GET", api + "/messages/?after=" + state.lastSeq + "&limit=200").then(function (body) {
        total += addMessages(body.results);
        if (body.has_more && body.results.length) return page(total);
        return total;
      });
    })(0)
      .then(function (added) {
        if (added) {
          renderMessages();
          if (stick) scrollToBottom();
          refreshSide();
        }
        return added;
      })
      .finally(function () {
        catchingUp = null;
      });
    return catchingUp;
  }

  function loadOlder() {
    if (!state.hasOlder || state.loadingOlder) return;
    state.loadingOlder = true;
    var before = state.firstSeq;
    var height = transcript.scrollHeight;
    var top = transcript.scrollTop;
    return Promise.all([
      Desk.api("GET", api + "/messages/?before=" + before + "&limit=50"),
      Desk.getJSON("/desk/threads/" + threadId + "/turns/?before=" + before),
    ])
      .then(function (results) {
        addMessages(results[0].results);
        addTurns(results[1].results);
        state.hasOlder = results[0].has_more;
        renderMessages();
        // Keep the message the reader was looking at in place.
        transcript.scrollTop = top + (transcript.scrollHeight - height);
      })
      .catch(function (error) {
        Desk.toast(error.message, "error");
      })
      .finally(function () {
        state.loadingOlder = false;
      });
  }

  olderButton.addEventListener("click", loadOlder);
  transcript.addEventListener("scroll", function () {
    if (transcript.scrollTop < 80) loadOlder();
  });

  function refreshTurns() {
    var after = (state.firstSeq || 1) - 1;
    return Desk.getJSON("/desk/threads/" + threadId + "/turns/?after=" + after).then(function (body) {
      addTurns(body.results);
      renderMessages();
    });
  }

  function refreshThread() {
    return Desk.api("GET", api + "/").then(setThread);
  }

  // An older refresh answering last would bring back, say, a question just answered.
  var sideTurn = Desk.newest();
  function refreshSide() {
    var ticket = sideTurn();
    return Promise.all([
      Desk.api("GET", api + "/"),
      Desk.api("GET", "/desk/escalations/?thread=" + threadId + "&limit=5"),
      Desk.api("GET", "/desk/human-requests/?thread=" + threadId + "&status=pending"),
      Desk.api("GET", "/desk/approvals/?thread=" + threadId + "&status=pending"),
      Desk.api("GET", api + "/assignments/?limit=200"),
    ])
      .then(function (results) {
        if (!sideTurn.current(ticket)) return;
        state.escalations = results[1].results;
        state.questions = results[2].results.slice().reverse();
        state.drafts = results[3].results.slice().reverse();
        state.assignments = results[4].results;
        setThread(results[0]);
      })
      .then(refreshTurns)
      .catch(function (error) {
        if (window.console) console.warn(error);
      });
  }
  var refreshSideSoon = Desk.debounce(refreshSide, 300);

  // --- Header and side panels --------------------------------------------------------

  function setThread(thread) {
    state.thread = thread;
    renderHeader();
    renderActions();
    renderEscalation();
    renderQuestions();
    renderDrafts();
    renderSuggestion();
    renderHistory();
    renderComposerHint();
  }

  function renderHeader() {
    var thread = state.thread;
    var customer = thread.customer || {};
    document.getElementById("thread-subject").textContent = thread.subject || "(no subject)";
    document.title = (thread.subject || "Thread") + " · Support desk";
    Desk.replace(
      document.getElementById("thread-meta"),
      el("span", { class: "customer" }, customer.name || "Customer", customer.email ? " <" + customer.email + ">" : ""),
      customer.external_id ? [" · ID ", el("span", { class: "external-id" }, customer.external_id)] : null,
      customer.verified ? [" ", Desk.badge("Verified", "verified")] : null,
      customer.tier ? [" · Tier ", el("strong", { class: "tier" }, customer.tier)] : null,
      " · ",
      el("span", { class: "status status-" + thread.status }, Desk.label.status[thread.status] || thread.status),
      " · ",
      thread.responder === "ai" ? Desk.badge("AI answers", "ai") : Desk.badge("Human answers", "human"),
      thread.ai_mode === "draft" ? [" ", Desk.badge("Drafts need approval", "draft")] : null,
      " · Priority ",
      el("strong", null, thread.priority),
      thread.sla_due_at ? [" · SLA ", Desk.sla(thread.sla_due_at)] : null
    );
  }

  function button(label, kind, handler, attrs) {
    var props = Object.assign({ type: "button", class: "button " + (kind || "") }, attrs || {});
    var node = el("button", props, label);
    node.addEventListener("click", function () {
      handler(node);
    });
    return node;
  }

  function assign(responder, node, success) {
    var body = { responder: responder, reason: responder === "ai" ? "handed back to the AI from the desk" : "taken over from the desk" };
    if (responder === "human") body.assignee = Desk.me.id;
    return Desk.act(node, function () {
      return Desk.api("POST", api + "/assign/", body).then(setThread);
    }, success).then(refreshSideSoon);
  }

  function setStatus(status, node) {
    return Desk.act(node, function () {
      return Desk.api("POST", api + "/status/", { status: status }).then(setThread);
    }, "Thread " + (Desk.label.status[status] || status).toLowerCase() + ".");
  }

  function renderActions() {
    var thread = state.thread;
    var line = document.getElementById("responder-line");
    if (thread.responder === "ai") {
      Desk.replace(line, "The AI answers this customer.");
    } else if (thread.assignee) {
      Desk.replace(line, thread.assignee.id === Desk.me.id ? "You answer this customer." : thread.assignee.name + " answers this customer.");
    } else {
      Desk.replace(line, "Waiting for a person to pick it up.");
    }
    var actions = [];
    if (thread.responder === "ai") {
      actions.push(button("Take over", "primary", function (node) { assign("human", node, "You took the thread over."); }, { id: "take-over" }));
    } else {
      if (!thread.assignee || thread.assignee.id !== Desk.me.id) {
        actions.push(button("Assign to me", "", function (node) { assign("human", node, "The thread is yours."); }, { id: "assign-me" }));
      }
      actions.push(button("Hand back to AI", "", function (node) { assign("ai", node, "The AI answers again."); }, { id: "hand-back" }));
    }
    if (thread.status === "open" || thread.status === "waiting_on_human") {
      actions.push(button("Mark resolved", "", function (node) { setStatus("resolved", node); }, { id: "mark-resolved" }));
    } else {
      actions.push(button("Reopen", "", function (node) { setStatus("open", node); }, { id: "reopen" }));
    }
    if (thread.status !== "closed") {
      actions.push(button("Close", "danger-quiet", function (node) { setStatus("closed", node); }, { id: "close-thread" }));
    }
    Desk.replace(document.getElementById("thread-actions"), actions);
  }

  function renderEscalation() {
    var card = document.getElementById("escalation-card");
    var body = document.getElementById("escalation-body");
    var escalation = state.thread.open_escalation || state.escalations[0] || null;
    if (!escalation) {
      card.hidden = true;
      return;
    }
    card.hidden = false;
    var sourceLabel = Desk.label.source[escalation.source] || escalation.source;
    var parts = [
      el(
        "p",
        null,
        Desk.badge(escalation.status, "escalation-" + escalation.status),
        " ",
        el("span", null, sourceLabel),
        " · ",
        el("span", { dataset: { ago: escalation.created_at } }, Desk.ago(escalation.created_at))
      ),
    ];
    if (escalation.queue) parts.push(el("p", null, el("strong", null, "Queue: "), escalation.queue.name));
    if (escalation.topic) parts.push(el("p", null, el("strong", null, "Topic: "), el("span", { class: "topic" }, escalation.topic)));
    // A reason that only repeats the source ("the customer asked for a person") is left out.
    if (escalation.reason && escalation.reason.trim().toLowerCase() !== sourceLabel.toLowerCase()) {
      parts.push(el("p", null, el("strong", null, "Reason: "), escalation.reason));
    }
    if (escalation.summary) {
      parts.push(el("h3", null, "Handoff summary"), el("p", { class: "summary", id: "handoff-summary" }, escalation.summary));
    }
    if (escalation.ai_suggestion) {
      parts.push(
        el("h3", null, "The AI would have said"),
        el("p", { class: "summary" }, escalation.ai_suggestion),
        button("Use as reply", "small", function () {
          composer.text.value = escalation.ai_suggestion;
          setMode("reply");
          composer.text.focus();
        })
      );
    }
    if (escalation.sla_due_at && escalation.status !== "resolved") parts.push(el("p", null, "SLA ", Desk.sla(escalation.sla_due_at)));
    if (escalation.status === "open") {
      parts.push(
        el("div", { class: "button-row" }, button("Claim", "primary", function (node) {
          Desk.act(node, function () {
            return Desk.api("POST", "/desk/escalations/" + escalation.id + "/claim/");
          }, "Claimed. The thread is yours.").then(refreshSide);
        }, { id: "claim" }))
      );
    }
    if (escalation.status === "open" || escalation.status === "claimed") {
      if (escalation.claimed_by) parts.push(el("p", null, "Claimed by ", el("strong", null, escalation.claimed_by.id === Desk.me.id ? "you" : escalation.claimed_by.name)));
      var note = el("textarea", { id: "resolve-note", rows: "2", maxlength: "2000" });
      var back = el("input", { type: "checkbox", id: "resolve-handback" });
      var resolveForm = el(
        "form",
        { class: "resolve-form" },
        el("label", { for: "resolve-note" }, "Resolution note (optional)"),
        note,
        el("label", { class: "check" }, back, " Hand the thread back to the AI"),
        el("div", { class: "button-row" }, el("button", { type: "submit", class: "button", id: "resolve" }, "Resolve escalation"))
      );
      resolveForm.addEventListener("submit", function (event) {
        event.preventDefault();
        var body = { note: note.value.trim() };
        if (back.checked) body.responder = "ai";
        Desk.act(resolveForm.querySelector("button"), function () {
          return Desk.api("POST", "/desk/escalations/" + escalation.id + "/resolve/", body);
        }, "Escalation resolved.").then(refreshSide);
      });
      parts.push(resolveForm);
    }
    Desk.replace(body, parts);
  }

  function renderQuestions() {
    var card = document.getElementById("questions-card");
    var body = document.getElementById("questions-body");
    var pending = state.questions.filter(function (q) { return q.status === "pending"; });
    card.hidden = pending.length === 0;
    // Keyed: a refresh (any event on the thread) keeps an answer being typed.
    Desk.keyed(
      body,
      pending,
      function (question) { return question.id; },
      function (question) {
        var id = "answer-" + question.id;
        var text = el("textarea", { id: id, rows: "3", maxlength: "10000", required: true });
        var form = el(
          "form",
          { class: "question", dataset: { question: question.id } },
          el("p", { class: "question-text" }, question.question),
          question.context ? el("p", { class: "muted" }, question.context) : null,
          el("p", { class: "muted" }, "Expires ", el("span", { dataset: { due: question.expires_at } })),
          el("label", { for: id }, "Your answer (only the AI sees it)"),
          text,
          el("div", { class: "button-row" }, el("button", { type: "submit", class: "button primary" }, "Answer the AI"))
        );
        form.addEventListener("submit", function (event) {
          event.preventDefault();
          if (!text.value.trim()) return text.focus();
          Desk.act(form.querySelector("button"), function () {
            return Desk.api("POST", "/desk/human-requests/" + question.id + "/answer/", { answer: text.value });
          }, "Answer sent. The AI continues.").then(refreshSide);
        });
        return form;
      }
    );
  }

  function renderDrafts() {
    var card = document.getElementById("drafts-card");
    var body = document.getElementById("drafts-body");
    var drafts = state.drafts.filter(function (d) { return d.kind === "approval" && d.status === "pending"; });
    card.hidden = drafts.length === 0;
    // Keyed: a refresh keeps an edit or a review being typed (a regenerated draft is a
    // new row, so a new node).
    Desk.keyed(
      body,
      drafts,
      function (draft) { return draft.id; },
      function (draft) {
        var id = "draft-" + draft.id;
        var text = el("textarea", { id: id, rows: "5", maxlength: "10000" });
        text.value = draft.content;
        var review = el("textarea", { id: id + "-review", rows: "2", maxlength: "5000" });
        var approve = button("Approve", "primary", function (node) {
          var body = text.value !== draft.content ? { content: text.value } : {};
          Desk.act(node, function () {
            return Desk.api("POST", "/desk/approvals/" + draft.id + "/approve/", body);
          }, "Sent to the customer.").then(refreshSide);
        });
        var reject = function (next) {
          return button(next === "human" ? "Reject, a person answers" : "Reject, regenerate", "danger-quiet", function (node) {
            if (!review.value.trim()) {
              review.focus();
              return Desk.toast("Say what is wrong with the draft first.", "error");
            }
            Desk.act(node, function () {
              return Desk.api("POST", "/desk/approvals/" + draft.id + "/reject/", { review: review.value, next: next });
            }, "Draft rejected.").then(refreshSide);
          });
        };
        return el(
          "div",
          { class: "draft", dataset: { draft: draft.id } },
          el("label", { for: id }, "Draft (edit before approving if needed)"),
          text,
          el("div", { class: "button-row" }, approve),
          el("label", { for: id + "-review" }, "Review (needed to reject)"),
          review,
          el("div", { class: "button-row" }, reject("regenerate"), reject("human"))
        );
      }
    );
  }

  function renderSuggestion() {
    var box = document.getElementById("suggestion");
    var suggestion = state.drafts.filter(function (d) { return d.kind === "suggestion" && d.status === "pending"; })[0];
    if (!suggestion) {
      box.hidden = true;
      Desk.clear(box);
      if (state.editingSuggestion) stopEditing();
      return;
    }
    box.hidden = false;
    Desk.replace(
      box,
      el("p", { class: "suggestion-head" }, Desk.badge("Copilot", "ai"), " Suggested reply"),
      el("p", { class: "suggestion-text" }, suggestion.content),
      el(
        "div",
        { class: "button-row" },
        button("Send", "primary small", function (node) {
          Desk.act(node, function () {
            return Desk.api("POST", "/desk/approvals/" + suggestion.id + "/approve/", {});
          }, "Suggestion sent.").then(catchUp).then(refreshSide);
        }, { id: "suggestion-send" }),
        button("Edit", "small", function () {
          state.editingSuggestion = suggestion;
          setMode("reply");
          composer.text.value = suggestion.content;
          composer.cancel.hidden = false;
          renderComposerHint();
          composer.text.focus();
        }, { id: "suggestion-edit" }),
        button("Discard", "small danger-quiet", function (node) {
          Desk.act(node, function () {
            return Desk.api("POST", "/desk/approvals/" + suggestion.id + "/reject/", {});
          }, "Suggestion discarded.").then(refreshSide);
        }, { id: "suggestion-discard" })
      )
    );
  }

  function renderHistory() {
    var historyList = document.getElementById("history");
    Desk.replace(
      historyList,
      state.assignments.map(function (row) {
        var who = row.responder === "ai" ? "AI" : row.assignee ? row.assignee.name : "a person (unassigned)";
        return el(
          "li",
          null,
          el("span", { class: "history-who" }, "→ " + who),
          row.assigned_by ? " by " + row.assigned_by.name : "",
          row.reason ? el("span", { class: "muted" }, " — " + row.reason) : null,
          " ",
          el("time", { datetime: row.created_at, class: "when" }, Desk.time(row.created_at))
        );
      })
    );
  }

  // --- Composer ---------------------------------------------------------------------

  var composer = {
    form: document.getElementById("composer"),
    text: document.getElementById("composer-text"),
    send: document.getElementById("composer-send"),
    cancel: document.getElementById("composer-cancel"),
    hint: document.getElementById("composer-hint"),
    label: document.getElementById("composer-label"),
  };

  function mode() {
    return composer.form.elements.mode.value;
  }

  function setMode(value) {
    composer.form.elements.mode.value = value;
    renderComposerHint();
  }

  function stopEditing() {
    state.editingSuggestion = null;
    composer.cancel.hidden = true;
    renderComposerHint();
  }

  function renderComposerHint() {
    var note = mode() === "note";
    composer.form.classList.toggle("is-note", note);
    composer.label.textContent = note ? "Internal note" : "Reply to customer";
    composer.send.textContent = state.editingSuggestion ? "Send edited suggestion" : note ? "Add note" : "Send reply";
    composer.text.placeholder = note ? "A note for your colleagues; the customer never sees it" : "Write a reply… (Ctrl+Enter to send)";
    var hint = "";
    if (state.editingSuggestion) hint = "You are editing the copilot's suggestion.";
    else if (note) hint = "Only staff see internal notes.";
    else if (state.thread.status === "closed") hint = "The thread is closed; reopen it to reply.";
    else if (state.thread.responder === "ai") hint = "Replying takes the thread over from the AI.";
    composer.hint.textContent = hint;
  }

  composer.form.addEventListener("change", function (event) {
    if (event.target.name === "mode") renderComposerHint();
  });
  composer.cancel.addEventListener("click", function () {
    composer.text.value = "";
    stopEditing();
  });

  composer.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var content = composer.text.value;
    if (!content.trim()) {
      composer.text.focus();
      return;
    }
    var request;
    if (state.editingSuggestion && mode() === "reply") {
      var suggestion = state.editingSuggestion;
      request = function () {
        return Desk.api("POST", "/desk/approvals/" + suggestion.id + "/approve/", { content: content });
      };
    } else {
      request = function () {
        return Desk.api("POST", api + "/reply/", { content: content, internal: mode() === "note" }).then(function (message) {
          if (addMessages([message])) {
            renderMessages();
            scrollToBottom();
          }
        });
      };
    }
    Desk.act(composer.send, request).then(function () {
      composer.text.value = "";
      stopEditing();
      typing(false);
      catchUp();
      refreshSideSoon();
    });
  });

  composer.text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      composer.form.requestSubmit();
    }
  });

  var typingActive = false;
  var typingTimer = null;
  function typing(active) {
    if (mode() === "note") active = false;
    clearTimeout(typingTimer);
    if (active) {
      typingTimer = setTimeout(function () {
        typing(false);
      }, 4000);
    }
    if (active === typingActive) return;
    typingActive = active;
    Desk.live.typing(active, threadId);
  }
  composer.text.addEventListener("input", function () {
    typing(!!composer.text.value);
  });
  composer.text.addEventListener("blur", function () {
    typing(false);
  });

  // --- Live ---------------------------------------------------------------------------

  function mine(frame) {
    return frame.thread === threadId || (frame.thread && frame.thread.id === threadId);
  }

  Desk.live.on("message.created", function (frame) {
    if (!mine(frame)) return;
    var message = frame.message;
    var gap = message.seq > state.lastSeq + 1;
    var stick = nearBottom();
    if (addMessages([message])) {
      renderMessages();
      if (stick) scrollToBottom();
      refreshSideSoon();
    }
    if (gap) catchUp(); // something in between is missing here: the API fills it
  });

  Desk.live.on("message.delta", function (frame) {
    if (!mine(frame) || state.messages[frame.message_id]) return;
    var node = state.streaming[frame.message_id];
    var stick = nearBottom();
    if (!node) {
      node = el(
        "li",
        { class: "line msg msg-ai streaming", dataset: { id: frame.message_id }, "aria-busy": "true" },
        el("div", { class: "msg-head" }, el("span", { class: "author" }, "AI assistant"), Desk.badge("AI", "ai"), el("span", { class: "muted" }, " writing…")),
        el("div", { class: "msg-body" })
      );
      state.streaming[frame.message_id] = node;
      list.appendChild(node);
    }
    var body = node.querySelector(".msg-body");
    if (typeof frame.text === "string") body.textContent = frame.text;
    else body.textContent += frame.delta;
    if (stick) scrollToBottom();
  });

  Desk.live.on("thread.updated", function (frame) {
    if (frame.thread && frame.thread.id === threadId) setThread(frame.thread);
  });

  ["escalation.created", "escalation.updated", "human_request.created", "human_request.updated", "approval.created", "approval.updated", "turn.updated", "sla.breached"].forEach(function (type) {
    Desk.live.on(type, function (frame) {
      if (mine(frame)) refreshSideSoon();
    });
  });

  var typingNode = document.getElementById("typing");
  var typingClear = null;
  Desk.live.on("typing", function (frame) {
    if (!mine(frame) || !frame.author || frame.author.kind !== "customer") return;
    clearTimeout(typingClear);
    typingNode.textContent = frame.active ? (frame.author.name || "The customer") + " is typing…" : "";
    if (frame.active) {
      typingClear = setTimeout(function () {
        typingNode.textContent = "";
      }, 8000);
    }
  });

  Desk.live.onConnect(refreshSideSoon);

  Desk.poll(function () {
    return Promise.all([catchUp(), refreshThread()]);
  }, 5000, 2500);

  // --- First paint -------------------------------------------------------------------

  addMessages(data.messages || []);
  addTurns(data.turns || []);
  if (!state.order.length) state.lastSeq = 0;
  setThread(data.thread);
  renderMessages();
  scrollToBottom();
  // The socket sends what came after the newest message shown, then follows the thread.
  Desk.live.subscribe(threadId, state.lastSeq);
})();
