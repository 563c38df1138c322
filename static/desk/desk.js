/* The desk's shared script: the API client, a tiny DOM builder, time formatting, the desk
 * socket with reconnect and a polling safety net, presence, and toasts.
 *
 * Everything from the server is inserted with textContent (Desk.el): never innerHTML.
 * The socket only notifies; the REST API is the truth. Each page catches up through the
 * API when the socket (re)connects, when a frame reveals a gap, and on a slow timer
 * (frames from other processes are lost without a shared channel layer).
 */
(function () {
  "use strict";

  var Desk = (window.Desk = {});
  var dataNode = document.getElementById("desk-data");
  Desk.data = dataNode ? JSON.parse(dataNode.textContent) : {};
  Desk.me = Desk.data.me || {};

  // --- DOM ------------------------------------------------------------------------

  /* el("p", {class: "x", onclick: fn, "aria-label": "…"}, "text", child, …) */
  Desk.el = function (tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key.slice(0, 2) === "on" && typeof value === "function") {
          node.addEventListener(key.slice(2), value);
        } else if (key === "class") {
          node.className = value;
        } else if (key === "text") {
          node.textContent = value;
        } else if (key === "dataset") {
          Object.keys(value).forEach(function (name) {
            node.dataset[name] = value[name];
          });
        } else if (value === true) {
          node.setAttribute(key, "");
        } else {
          node.setAttribute(key, String(value));
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  };

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) {
        append(node, c);
      });
    } else if (typeof child === "string" || typeof child === "number") {
      node.appendChild(document.createTextNode(String(child)));
    } else {
      node.appendChild(child);
    }
  }

  Desk.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  Desk.replace = function (node) {
    Desk.clear(node);
    for (var i = 1; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  };

  /* Show one node per item in ``node``, in order, keeping the nodes of items it already
   * shows: a refresh must not wipe what an agent is typing into them, nor move the focus.
   * ``key(item)`` names an item; ``build(item)`` makes the node of a new one. */
  Desk.keyed = function (node, items, key, build) {
    var shown = {};
    Array.prototype.forEach.call(node.children, function (child) {
      if (child.dataset.key) shown[child.dataset.key] = child;
    });
    var wanted = items.map(function (item) {
      var name = String(key(item));
      var child = shown[name] || build(item);
      child.dataset.key = name;
      delete shown[name];
      return child;
    });
    Object.keys(shown).forEach(function (name) {
      node.removeChild(shown[name]);
    });
    wanted.forEach(function (child, index) {
      var at = node.children[index] || null;
      if (at !== child) node.insertBefore(child, at);
    });
    // Whatever else is there (a placeholder, text) goes.
    Array.prototype.slice.call(node.childNodes).forEach(function (child) {
      if (wanted.indexOf(child) === -1) node.removeChild(child);
    });
    return node;
  };

  // --- Formatting -----------------------------------------------------------------

  Desk.time = function (iso) {
    if (!iso) return "";
    var date = new Date(iso);
    var now = new Date();
    var sameDay = date.toDateString() === now.toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], {
          month: "short",
          day: "numeric",
          hour: "2-digit",
          minute: "2-digit",
        });
  };

  function span(seconds) {
    seconds = Math.abs(Math.round(seconds));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + "h " + (minutes % 60) + "m";
    return Math.floor(hours / 24) + "d";
  }

  Desk.ago = function (iso) {
    if (!iso) return "";
    var seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    return seconds < 45 ? "just now" : span(seconds) + " ago";
  };

  /* An SLA countdown element; Desk.tick() keeps every one of them current. */
  Desk.sla = function (iso) {
    if (!iso) return Desk.el("span", { class: "muted", text: "—" });
    var node = Desk.el("time", { class: "sla", datetime: iso, dataset: { due: iso } });
    renderSla(node);
    return node;
  };

  function renderSla(node) {
    var seconds = (new Date(node.dataset.due).getTime() - Date.now()) / 1000;
    node.classList.toggle("sla-breached", seconds < 0);
    node.classList.toggle("sla-soon", seconds >= 0 && seconds < 15 * 60);
    node.textContent = seconds < 0 ? "overdue " + span(seconds) : "due in " + span(seconds);
    node.title = "SLA due " + new Date(node.dataset.due).toLocaleString();
  }

  setInterval(function () {
    document.querySelectorAll("[data-due]").forEach(renderSla);
    document.querySelectorAll("[data-ago]").forEach(function (node) {
      node.textContent = Desk.ago(node.dataset.ago);
    });
  }, 1000);

  Desk.label = {
    status: {
      open: "Open",
      waiting_on_human: "Waiting on a person",
      resolved: "Resolved",
      closed: "Closed",
    },
    source: {
      tool: "The AI escalated",
      low_confidence: "The AI was not confident",
      requires_human: "The AI said a person must answer",
      customer_request: "The customer asked for a person",
      classifier: "The classifier sent it to a person",
      ai_failure: "The AI failed",
      staff: "A colleague escalated",
    },
  };

  Desk.badge = function (text, kind, title) {
    return Desk.el("span", { class: "badge badge-" + kind, title: title || null, text: text });
  };

  // --- Toasts ---------------------------------------------------------------------

  Desk.toast = function (message, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var node = Desk.el("div", { class: "toast toast-" + (kind || "info") }, message);
    box.appendChild(node);
    setTimeout(function () {
      node.remove();
    }, kind === "error" ? 8000 : 4000);
  };

  // --- API ------------------------------------------------------------------------

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function ApiError(status, body) {
    var error = (body && body.error) || {};
    this.status = status;
    this.code = error.code || "http_" + status;
    this.fields = error.fields || null;
    this.message = error.message || "The request failed (" + status + ").";
    if (this.fields) {
      var first = Object.keys(this.fields)[0];
      if (first) this.message = first + ": " + this.fields[first].join(" ");
    }
  }
  Desk.ApiError = ApiError;

  /* Desk.api("GET", "/desk/threads/") → the parsed JSON body; throws ApiError.
   * Paths are under /api/v1 unless absolute. Every POST carries an Idempotency-Key so a
   * retried click cannot act twice. */
  Desk.api = function (method, path, body) {
    var url = /^https?:|^\//.test(path) && path.indexOf("/api/") >= 0 ? path : "/api/v1" + path;
    var headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = cookie("csrftoken");
      headers["Idempotency-Key"] = uuid4();
    }
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (json) {
          if (response.status === 401) {
            // The session ended (signed out in another tab, or expired).
            window.location.href = "/desk/login/?next=" + encodeURIComponent(location.pathname);
          }
          if (!response.ok) throw new ApiError(response.status, json);
          return json;
        });
    });
  };

  Desk.getJSON = function (url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(
      function (response) {
        return response.json().then(function (json) {
          if (!response.ok) throw new ApiError(response.status, json);
          return json;
        });
      }
    );
  };

  /* Run an action from a button: disabled while it runs, errors shown as a toast. */
  Desk.act = function (button, promiseFactory, success) {
    if (button) button.disabled = true;
    return promiseFactory()
      .then(function (result) {
        if (success) Desk.toast(success, "success");
        return result;
      })
      .catch(function (error) {
        Desk.toast(error.message || String(error), "error");
        throw error;
      })
      .finally(function () {
        if (button) button.disabled = false;
      });
  };

  // --- The desk socket ------------------------------------------------------------
  //
  // The shared client (static/supportdesk/realtime.js) does the socket work: reconnects
  // with backoff, heartbeats, catch-up of followed threads with after=<last seq>, dedupe
  // by id and gap fetches. Desk.live turns its callbacks back into frames by type, so a
  // page says Desk.live.on("escalation.created", fn).

  var PRESENCE_KEY = "supportdesk.desk.presence";

  function Live() {
    this.handlers = {};
    this.connectHandlers = [];
    this.stateHandlers = [];
    this.state = "offline";
    this.wanted = false;
    this.client = null;
    this.followed = {};
  }

  Live.prototype.on = function (type, handler) {
    (this.handlers[type] = this.handlers[type] || []).push(handler);
    return this;
  };

  /* Called on every (re)connect: the page catches up through the API. */
  Live.prototype.onConnect = function (handler) {
    this.connectHandlers.push(handler);
    return this;
  };

  Live.prototype.onState = function (handler) {
    this.stateHandlers.push(handler);
    return this;
  };

  Live.prototype.emit = function (type, frame) {
    (this.handlers[type] || []).forEach(function (handler) {
      try {
        handler(frame);
      } catch (error) {
        if (window.console) console.error(error);
      }
    });
  };

  Live.prototype.setState = function (state) {
    this.state = state;
    var node = document.getElementById("connection");
    if (node) {
      node.dataset.state = state;
      node.textContent =
        state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Offline · polling";
    }
    this.stateHandlers.forEach(function (handler) {
      handler(state);
    });
  };

  Live.prototype.start = function () {
    var Realtime = window.SupportdeskRealtime;
    if (!Realtime || !("WebSocket" in window)) return this.setState("offline");
    var self = this;
    this.wanted = true;
    if (!this.client) {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      this.client = new Realtime.RealtimeClient({
        url: scheme + location.host + "/ws/desk/",
        mode: "desk",
        fetchMessages: Realtime.deskFetcher({}),
        onMessage: function (message, thread) {
          self.emit("message.created", { type: "message.created", message: message, thread: thread });
        },
        onDelta: function (frame, text) {
          self.emit("message.delta", Object.assign({}, frame, { text: text }));
        },
        onThread: function (thread, frame) {
          self.emit(frame.type, frame);
        },
        onTyping: function (frame) {
          self.emit("typing", frame);
        },
        onEvent: function (frame) {
          self.emit(frame.type, frame);
        },
        onStatus: function (status) {
          if (status === "open") {
            self.setState("live");
            if (Desk.presence() === "busy") self.client.setPresence("busy");
            self.connectHandlers.forEach(function (handler) {
              handler();
            });
          } else if (status === "connecting") {
            self.setState("connecting");
          } else {
            // "closed" (it reconnects) or "refused" (signed out, or not an agent).
            if (status === "refused") self.wanted = false;
            self.setState("offline");
          }
        },
      });
      Object.keys(this.followed).forEach(function (threadId) {
        self.client.subscribe(threadId, self.followed[threadId]);
      });
    }
    this.client.connect();
  };

  Live.prototype.stop = function () {
    this.wanted = false;
    if (this.client) this.client.close();
    this.setState("offline");
  };

  /* Follow a thread: its messages after ``after`` come first, then live, in order. */
  Live.prototype.subscribe = function (threadId, after) {
    this.followed[threadId] = after;
    if (this.client) this.client.subscribe(threadId, after);
  };

  Live.prototype.typing = function (active, threadId) {
    if (this.client && this.state === "live") this.client.typing(active, threadId);
  };

  Live.prototype.setPresence = function (status) {
    if (this.client && this.state === "live") this.client.setPresence(status);
  };

  Desk.live = new Live();

  /* Run ``fn`` now and then every few seconds: often while the socket is down, as a
   * safety net while it is up. */
  Desk.poll = function (fn, liveMs, offlineMs) {
    var timer = null;
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(run, Desk.live.state === "live" ? liveMs || 8000 : offlineMs || 3000);
    }
    function run() {
      if (document.hidden) return schedule();
      Promise.resolve()
        .then(fn)
        .catch(function () {})
        .then(schedule);
    }
    Desk.live.onState(function (state) {
      if (state !== "connecting") schedule();
    });
    schedule();
    return run;
  };

  /* Call ``fn`` once, ``ms`` after the last of a burst of calls. */
  Desk.debounce = function (fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  };

  /* For reloads that overlap (a socket event's debounced one and the one after an action):
   * the answers of an older one can arrive last and would bring back what the newer one
   * showed gone. ``var turn = Desk.newest()``; each reload takes ``var ticket = turn()``
   * and applies its answer only ``if (turn.current(ticket))``. */
  Desk.newest = function () {
    var started = 0;
    var applied = 0;
    var turn = function () {
      return ++started;
    };
    turn.current = function (ticket) {
      if (ticket < applied) return false;
      applied = ticket;
      return true;
    };
    return turn;
  };

  // --- Presence -------------------------------------------------------------------

  Desk.presence = function () {
    try {
      return localStorage.getItem(PRESENCE_KEY) || "online";
    } catch (error) {
      return "online";
    }
  };

  function setupPresence() {
    var select = document.getElementById("presence");
    if (!select) return;
    select.value = Desk.presence();
    select.dataset.status = select.value;
    select.addEventListener("change", function () {
      var status = select.value;
      select.dataset.status = status;
      try {
        localStorage.setItem(PRESENCE_KEY, status);
      } catch (error) {
        /* private mode: the choice lasts for this page only */
      }
      if (status === "offline") {
        // The server marks an agent offline when their last desk socket closes.
        Desk.live.stop();
        Desk.toast("You are offline: no new work is routed to you. The page still refreshes.");
      } else if (!Desk.live.wanted) {
        Desk.live.start();
      } else {
        Desk.live.setPresence(status);
        Desk.toast(status === "busy" ? "You are busy." : "You are online.");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupPresence();
    if (Desk.presence() !== "offline") Desk.live.start();
    else Desk.live.setState("offline");
  });
})();
