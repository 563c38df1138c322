/* Support chat widget: one script tag, no framework.
 *
 *   <script src="https://support.example.com/static/widget/widget.js"
 *           data-title="Northwind support" async></script>
 *
 * Optional attributes: data-api (the server, default: where this script comes from),
 * data-name / data-email / data-external-id (who the customer is), data-open="true",
 * data-signature and data-tier (identity verification: the site's backend signs
 * external_id and tier, see the README; without a signature the tier is ignored).
 * On a site other than the server itself, the server must list that site's origin in
 * SUPPORTDESK_WIDGET_ORIGINS (CORS for the customer API, the customer socket's Origin).
 *
 * It opens a chat panel, creates a thread through the customer API on the first message,
 * keeps the thread token in localStorage, and shows the conversation live: the customer
 * socket through the shared realtime client (static/supportdesk/realtime.js, which this
 * script loads: catch-up with after=<last seq>, dedupe by id, gap detection with prev_seq,
 * reconnect with backoff) with REST polling as the fallback. Everything from the server is
 * inserted with textContent, never as HTML. The panel lives in a shadow root, so the host
 * page's CSS cannot break it and its CSS cannot leak out.
 */
(function () {
  "use strict";
  if (window.SupportdeskWidget) return;

  var script =
    document.currentScript ||
    (function () {
      var scripts = document.querySelectorAll("script[src*='widget.js']");
      return scripts[scripts.length - 1];
    })();
  var config = (script && script.dataset) || {};
  var base = (config.api || new URL(script ? script.src : location.href, location.href).origin).replace(/\/$/, "");
  var STORE = "supportdesk.widget:" + base;
  var POLL_LIVE_MS = 8000;
  var POLL_OFFLINE_MS = 3000;

  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; }",
    ".root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; color: #1f2328; }",
    ".launcher { display: flex; align-items: center; gap: 8px; background: #0b5cad; color: #fff; border: 0; border-radius: 999px; padding: 12px 18px; font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 6px 18px rgba(0,0,0,.25); margin-left: auto; }",
    ".launcher:hover { background: #084a8c; }",
    ":focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }",
    ".panel { width: min(380px, calc(100vw - 24px)); height: min(600px, calc(100vh - 100px)); background: #fff; border-radius: 12px; box-shadow: 0 12px 40px rgba(0,0,0,.28); display: flex; flex-direction: column; overflow: hidden; margin-bottom: 12px; border: 1px solid #d0d7de; }",
    ".panel[hidden] { display: none; }",
    ".head { background: #0b5cad; color: #fff; padding: 12px 14px; display: flex; align-items: flex-start; gap: 8px; }",
    ".head h2 { margin: 0; font-size: 16px; }",
    ".status { margin: 2px 0 0; font-size: 13px; display: flex; align-items: center; gap: 6px; }",
    ".dot { width: 8px; height: 8px; border-radius: 50%; background: #7ee2a8; display: inline-block; }",
    ".dot.waiting { background: #ffd33d; }",
    ".dot.closed { background: #c9d1d9; }",
    ".close { margin-left: auto; background: transparent; color: #fff; border: 0; font-size: 22px; line-height: 1; cursor: pointer; padding: 2px 6px; border-radius: 6px; }",
    ".close:hover { background: rgba(255,255,255,.15); }",
    ".log { list-style: none; margin: 0; padding: 12px; flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: 8px; background: #f6f8fa; }",
    ".msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }",
    ".msg .who { display: block; font-size: 12px; font-weight: 700; color: #57606a; margin-bottom: 2px; }",
    ".msg.customer { align-self: flex-end; background: #0b5cad; color: #fff; border-bottom-right-radius: 4px; }",
    ".msg.customer .who { color: #dbe9f8; }",
    ".msg.ai, .msg.human { align-self: flex-start; background: #fff; border: 1px solid #d0d7de; border-bottom-left-radius: 4px; }",
    ".msg.human { border-color: #a8d9b3; background: #f0faf2; }",
    ".notice { align-self: center; text-align: center; font-size: 13px; color: #57606a; background: transparent; padding: 2px 8px; max-width: 95%; white-space: pre-wrap; overflow-wrap: anywhere; }",
    ".msg.streaming .text::after { content: '\\258D'; animation: blink 1s steps(1) infinite; }",
    "@keyframes blink { 50% { opacity: 0; } }",
    ".typing { margin: 0; padding: 0 14px; min-height: 20px; font-size: 13px; color: #57606a; font-style: italic; background: #f6f8fa; }",
    ".bar { display: flex; gap: 8px; padding: 8px 12px 0; }",
    ".handoff { background: #fff; color: #0b5cad; border: 1px solid #0b5cad; border-radius: 999px; padding: 4px 12px; font: inherit; font-size: 13px; cursor: pointer; }",
    ".handoff:disabled { color: #57606a; border-color: #d0d7de; cursor: default; }",
    "form { display: flex; gap: 8px; padding: 8px 12px 12px; align-items: flex-end; }",
    "textarea { flex: 1; resize: none; font: inherit; border: 1px solid #8c959f; border-radius: 8px; padding: 8px; min-height: 42px; max-height: 120px; color: #1f2328; }",
    ".send { background: #0b5cad; color: #fff; border: 0; border-radius: 8px; padding: 10px 14px; font: inherit; font-weight: 600; cursor: pointer; }",
    ".send:disabled { opacity: .6; cursor: progress; }",
    ".error { color: #b42318; font-size: 13px; margin: 0; padding: 0 12px 8px; }",
    ".error:empty { display: none; }",
    ".vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }",
    "@media (prefers-reduced-motion: reduce) { .msg.streaming .text::after { animation: none; } }",
  ].join("\n");

  // --- DOM ----------------------------------------------------------------------------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "class") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var host = el("div", { id: "supportdesk-widget" });
  var shadow = host.attachShadow({ mode: "open" });
  var style = el("style", {}, CSS);
  var root = el("div", { class: "root" });
  var panel = el("section", { class: "panel", id: "sd-panel", role: "dialog", "aria-label": config.title || "Support chat" });
  panel.hidden = true;
  // Not a <header>: inside the host page that would be a second banner landmark.
  var header = el("div", { class: "head" });
  var titles = el("div");
  var title = el("h2", {}, config.title || "Support");
  var status = el("p", { class: "status", role: "status" });
  var statusDot = el("span", { class: "dot", "aria-hidden": "true" });
  var statusText = el("span", { class: "status-text" }, "AI assistant");
  status.appendChild(statusDot);
  status.appendChild(statusText);
  titles.appendChild(title);
  titles.appendChild(status);
  var closeButton = el("button", { class: "close", type: "button", "aria-label": "Close chat" }, "×");
  header.appendChild(titles);
  header.appendChild(closeButton);
  // A log of plain blocks: list items would need a list parent, and role="log" takes
  // the list's role away.
  // Focusable: keyboard users scroll it with the arrow keys.
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
  var typingLine = el("p", { class: "typing", "aria-live": "polite" });
  var bar = el("div", { class: "bar" });
  var handoffButton = el("button", { class: "handoff", type: "button" }, "Talk to a person");
  bar.appendChild(handoffButton);
  var form = el("form", { "aria-label": "Send a message" });
  var label = el("label", { class: "vh", for: "sd-input" }, "Your message");
  var input = el("textarea", { id: "sd-input", rows: "1", maxlength: "10000", placeholder: "Type your message…" });
  var sendButton = el("button", { class: "send", type: "submit" }, "Send");
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(sendButton);
  var errorLine = el("p", { class: "error", role: "alert" });
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typingLine);
  panel.appendChild(bar);
  panel.appendChild(form);
  panel.appendChild(errorLine);
  var launcher = el("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "sd-panel" }, "Chat with us");
  root.appendChild(panel);
  root.appendChild(launcher);
  shadow.appendChild(style);
  shadow.appendChild(root);

  // --- State ----------------------------------------------------------------------------

  var state = {
    thread: null, // {id, token}
    info: null, // the customer Thread view
    messages: {}, // id → true
    lastSeq: 0,
    streaming: {}, // message id → element
    unannounced: null, // {node, name}: a reply by an agent not yet said to have joined
    client: null, // the shared realtime client, once loaded
    live: false,
    pollTimer: null,
    started: false,
  };

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE) || "null");
      if (saved && saved.id && saved.token) return saved;
    } catch (error) {
      /* storage blocked: the conversation lasts for this page */
    }
    return null;
  }

  function save(thread) {
    try {
      if (thread) localStorage.setItem(STORE, JSON.stringify(thread));
      else localStorage.removeItem(STORE);
    } catch (error) {
      /* see load() */
    }
  }

  // --- API ----------------------------------------------------------------------------

  function request(method, path, body) {
    var headers = { Accept: "application/json" };
    if (state.thread) headers.Authorization = "Bearer " + state.thread.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(base + "/api/v1" + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (json) {
          if (!response.ok) {
            var error = new Error((json && json.error && json.error.message) || "Something went wrong. Please try again.");
            error.status = response.status;
            error.code = json && json.error && json.error.code;
            throw error;
          }
          return json;
        });
    });
  }

  function forget() {
    // The token no longer opens the thread (404): start a new conversation.
    stopSocket();
    save(null);
    state.started = false;
    state.thread = null;
    state.info = null;
    state.messages = {};
    state.lastSeq = 0;
    while (log.firstChild) log.removeChild(log.firstChild);
    greet();
    setStatus();
  }

  // --- Rendering ------------------------------------------------------------------------

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function who(message) {
    var author = message.author || {};
    if (author.kind === "customer") return "You";
    if (author.kind === "human") return (author.name || "Support") + " from Support";
    return author.name || "AI assistant";
  }

  function addMessage(message) {
    if (state.messages[message.id]) return false;
    state.messages[message.id] = true;
    state.lastSeq = Math.max(state.lastSeq, message.seq);
    var stick = nearBottom();
    var item;
    var kind = (message.author && message.author.kind) || "system";
    if (kind === "system" || message.role === "system") {
      item = el("div", { class: "notice", "data-seq": String(message.seq) }, message.content);
    } else {
      item = el("div", { class: "msg " + kind, "data-seq": String(message.seq), "data-id": message.id });
      item.appendChild(el("span", { class: "who" }, who(message)));
      item.appendChild(el("span", { class: "text" }, message.content));
    }
    var streaming = state.streaming[message.id];
    if (streaming) {
      log.replaceChild(item, streaming);
      delete state.streaming[message.id];
    } else {
      // Keep seq order even when a catch-up page arrives after a live frame; the newest
      // message goes last (after any "joined" notice shown before it).
      var later = null;
      var nodes = log.querySelectorAll("[data-seq]");
      for (var i = 0; i < nodes.length; i++) {
        if (Number(nodes[i].getAttribute("data-seq")) > message.seq) {
          later = nodes[i];
          break;
        }
      }
      if (later) later.before(item);
      else log.appendChild(item);
    }
    var agent = state.info && state.info.responder === "human" && state.info.agent ? state.info.agent.name : null;
    if (kind === "human" && message.author && message.author.name !== agent) {
      // A reply that takes the thread over arrives before the thread's update: the
      // "joined" notice then goes before it (setThread).
      state.unannounced = { node: item, name: message.author.name };
    }
    if (stick || kind === "customer") log.scrollTop = log.scrollHeight;
    return true;
  }

  function addDelta(frame, textSoFar) {
    if (state.messages[frame.message_id]) return;
    var item = state.streaming[frame.message_id];
    if (!item) {
      item = el("div", { class: "msg ai streaming", "data-id": frame.message_id, "aria-busy": "true" });
      item.appendChild(el("span", { class: "who" }, "AI assistant"));
      item.appendChild(el("span", { class: "text" }));
      state.streaming[frame.message_id] = item;
      log.appendChild(item);
    }
    item.querySelector(".text").textContent = textSoFar;
    log.scrollTop = log.scrollHeight;
  }

  function notice(text, before) {
    var stick = nearBottom();
    var node = el("div", { class: "notice" }, text);
    if (before && before.parentNode === log) log.insertBefore(node, before);
    else log.appendChild(node);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function greet() {
    notice("Hi! Ask us anything. Our AI assistant answers right away, and a person is one click away.");
  }

  function setStatus() {
    var info = state.info;
    var text = "AI assistant";
    var dot = "";
    if (info) {
      if (info.status === "closed") {
        text = "This conversation is closed";
        dot = "closed";
      } else if (info.responder === "human" && info.agent) {
        text = info.agent.name + " from Support";
      } else if (info.responder === "human" || info.status === "waiting_on_human") {
        text = "Waiting for a person…";
        dot = "waiting";
      }
    }
    statusText.textContent = text;
    statusDot.className = "dot " + dot;
    var human = info && info.responder === "human";
    handoffButton.disabled = !!human || (info && info.status === "closed");
    handoffButton.textContent = human ? (info.agent ? "You're talking to a person" : "A person will join soon") : "Talk to a person";
    var closed = info && info.status === "closed";
    input.disabled = !!closed;
    sendButton.disabled = !!closed;
    input.placeholder = closed ? "This conversation is closed" : "Type your message…";
  }

  function setThread(info) {
    var before = state.info;
    state.info = info;
    var unannounced = state.unannounced;
    if (before) {
      var was = before.responder === "human" && before.agent ? before.agent.name : null;
      var now = info.responder === "human" && info.agent ? info.agent.name : null;
      var first = unannounced && unannounced.name === now ? unannounced.node : null;
      if (now && now !== was) notice(now + " from Support joined the conversation", first);
      else if (!now && was && info.responder === "ai") notice("Our AI assistant is answering again");
      if (info.status === "closed" && before.status !== "closed") notice("This conversation was closed");
    }
    state.unannounced = null;
    setStatus();
  }

  function showError(text) {
    errorLine.textContent = text || "";
  }

  // --- Sync -----------------------------------------------------------------------------

  var syncing = null;

  function sync() {
    if (!state.thread) return Promise.resolve();
    if (syncing) return syncing;
    var id = state.thread.id;
    syncing = (function page() {
      return request("GET", "/threads/" + id + "/messages/?after=" + state.lastSeq + "&limit=200").then(function (body) {
        body.results.forEach(addMessage);
        if (body.has_more && body.results.length) return page();
      });
    })()
      .then(function () {
        return request("GET", "/threads/" + id + "/");
      })
      .then(setThread)
      .catch(function (error) {
        if (error.status === 404 || error.status === 401) forget();
      })
      .finally(function () {
        syncing = null;
      });
    return syncing;
  }

  function schedulePoll() {
    clearTimeout(state.pollTimer);
    if (!state.thread) return;
    state.pollTimer = setTimeout(function () {
      (document.hidden ? Promise.resolve() : sync()).then(schedulePoll, schedulePoll);
    }, state.live ? POLL_LIVE_MS : POLL_OFFLINE_MS);
  }

  // --- Socket ----------------------------------------------------------------------------
  //
  // The shared realtime client (static/supportdesk/realtime.js, loaded from beside this
  // script) keeps the customer socket: reconnect with backoff, after=<last seq> catch-up,
  // dedupe by id and gap fetches. Until it has loaded, or if it cannot, polling carries on.

  var realtimeSrc = script && script.src
    ? new URL("../supportdesk/realtime.js", script.src).href
    : base + "/static/supportdesk/realtime.js";
  var realtimeLoading = null;

  function loadRealtime() {
    if (window.SupportdeskRealtime) return Promise.resolve(window.SupportdeskRealtime);
    if (!realtimeLoading) {
      realtimeLoading = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = realtimeSrc;
        tag.async = true;
        tag.onload = function () {
          if (window.SupportdeskRealtime) resolve(window.SupportdeskRealtime);
          else reject(new Error("the realtime client did not load"));
        };
        tag.onerror = function () {
          realtimeLoading = null;
          reject(new Error("the realtime client did not load"));
        };
        (document.head || document.body).appendChild(tag);
      });
    }
    return realtimeLoading;
  }

  function stopSocket() {
    if (state.client) {
      var client = state.client;
      state.client = null;
      client.close();
    }
    state.live = false;
  }

  function connect() {
    if (!state.thread || state.client || !("WebSocket" in window)) return;
    var thread = state.thread;
    loadRealtime()
      .then(function (Realtime) {
        if (state.thread !== thread || state.client) return;
        var client = new Realtime.RealtimeClient({
          url:
            base.replace(/^http/, "ws") +
            "/ws/threads/" + encodeURIComponent(thread.id) + "/?token=" + encodeURIComponent(thread.token),
          mode: "customer",
          threadId: thread.id,
          after: state.lastSeq,
          fetchMessages: Realtime.customerFetcher({ baseUrl: base, token: thread.token }),
          onMessage: function (message) {
            addMessage(message);
            if (message.author && message.author.kind !== "customer") typingLine.textContent = "";
          },
          onDelta: addDelta,
          onThread: setThread,
          onTyping: function (frame) {
            if (!frame.author) return;
            typingLine.textContent = frame.active ? (frame.author.name || "Support") + " is typing…" : "";
          },
          onStatus: function (status) {
            if (state.client !== client) return;
            state.live = status === "open";
            // Refused: the token no longer opens the thread, or the thread is gone; the
            // REST call tells which (a 404 starts a new conversation).
            if (status === "refused") sync();
            schedulePoll();
          },
        });
        state.client = client;
        client.connect();
      })
      .catch(function () {
        /* polling carries on */
      });
  }

  function start() {
    if (state.started || !state.thread) return;
    state.started = true;
    sync().then(function () {
      connect();
      schedulePoll();
    });
  }

  // --- Actions -----------------------------------------------------------------------------

  function customer() {
    var who = {};
    if (config.name) who.name = config.name;
    if (config.email) who.email = config.email;
    if (config.externalId) who.external_id = config.externalId;
    if (config.tier) who.tier = config.tier;
    if (config.signature) who.signature = config.signature;
    return who;
  }

  function createThread(message) {
    var body = { customer: customer() };
    if (message) {
      body.message = message;
      // The desk lists threads by subject: the start of the first message is a fair one.
      var subject = message.replace(/\s+/g, " ").trim();
      body.subject = subject.length > 80 ? subject.slice(0, 79) + "…" : subject;
    }
    return request("POST", "/threads/", body).then(function (created) {
      state.thread = { id: created.thread.id, token: created.token };
      save(state.thread);
      setThread(created.thread);
      start();
      return created;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var content = input.value.trim();
    if (!content) return input.focus();
    sendButton.disabled = true;
    showError("");
    var sent = state.thread
      ? request("POST", "/threads/" + state.thread.id + "/messages/", { content: content }).then(addMessage)
      : createThread(content).then(sync);
    sent
      .then(function () {
        input.value = "";
        typing(false);
      })
      .catch(function (error) {
        if (error.status === 404) forget();
        showError(error.status === 429 ? "You are sending messages too fast. Please wait a moment." : error.message);
      })
      .finally(function () {
        sendButton.disabled = !!(state.info && state.info.status === "closed");
        input.focus();
      });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  var typingActive = false;
  var typingTimer = null;
  function typing(active) {
    clearTimeout(typingTimer);
    if (active) typingTimer = setTimeout(function () { typing(false); }, 4000);
    if (active === typingActive) return;
    typingActive = active;
    if (state.client && state.live) state.client.typing(active);
  }
  input.addEventListener("input", function () {
    typing(!!input.value);
  });

  handoffButton.addEventListener("click", function () {
    handoffButton.disabled = true;
    showError("");
    var ready = state.thread ? Promise.resolve() : createThread(null);
    ready
      .then(function () {
        return request("POST", "/threads/" + state.thread.id + "/handoff/", {});
      })
      .then(function (thread) {
        setThread(thread);
        return sync();
      })
      .catch(function (error) {
        showError(error.status === 429 ? "We already asked a person to join. Please wait a moment." : error.message);
        setStatus();
      });
  });

  function open(focus) {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.textContent = "Close chat";
    if (focus !== false) input.focus();
    log.scrollTop = log.scrollHeight;
    start();
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.textContent = "Chat with us";
    launcher.focus();
  }

  launcher.addEventListener("click", function () {
    if (panel.hidden) open();
    else close();
  });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });

  // --- Boot -------------------------------------------------------------------------------

  state.thread = load();
  greet();
  setStatus();

  function mount() {
    document.body.appendChild(host);
    if (state.thread) start();
    if (config.open === "true") open(false);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.SupportdeskWidget = {
    open: open,
    close: close,
    reset: forget,
  };
})();
