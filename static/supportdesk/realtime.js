/*
 * supportdesk realtime client, shared by the customer widget and the desk.
 *
 * The socket notifies, the database is the truth (API.md "Realtime"):
 *  - reconnects with exponential backoff and jitter, and asks for `after=<last seq>`
 *    so the server sends what was missed before any live frame;
 *  - drops a message it already has (by id): catch-up, gap fetches and live frames
 *    may overlap;
 *  - sees a gap (a customer frame's `prev_seq`, or a desk seq that is not the next
 *    one of a subscribed thread) and fetches the missing messages from the REST list
 *    before handing the live one on, so messages always arrive in order;
 *  - sends a heartbeat and reconnects when the server has been silent too long.
 *
 * No build step: load it with <script src=".../realtime.js"> (it defines
 * `window.SupportdeskRealtime`) or `require()` it.
 *
 *   const client = new SupportdeskRealtime.RealtimeClient({
 *     url: "wss://example.com/ws/threads/<id>/?token=<token>",
 *     mode: "customer",                       // or "desk" with url ".../ws/desk/"
 *     threadId: "<id>",                       // customer mode
 *     fetchMessages: SupportdeskRealtime.customerFetcher({threadId, token}),
 *     onMessage(message) {...},               // each message once, in seq order per thread
 *     onDelta(frame, textSoFar) {...},        // streamed AI text; onMessage replaces it
 *     onThread(thread) {...}, onTyping(frame) {...}, onEvent(frame) {...},
 *     onStatus(status) {...},                 // "connecting" | "open" | "closed" | "refused"
 *   });
 *   client.connect();
 */
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.SupportdeskRealtime = api;
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // Close codes after which reconnecting cannot help (see threads/consumers.py).
  const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4404]);
  const MAX_REMEMBERED_IDS = 5000;

  function noop() {}

  function withAfter(url, after) {
    const clean = url.replace(/([?&])after=[^&]*(&|$)/, "$1").replace(/[?&]$/, "");
    return clean + (clean.indexOf("?") === -1 ? "?" : "&") + "after=" + after;
  }

  class ThreadState {
    constructor(lastSeq) {
      this.lastSeq = lastSeq || 0;
      this.seen = new Set();
      this.order = [];
      this.streams = new Map(); // message id -> text streamed so far
    }

    remember(id) {
      this.seen.add(id);
      this.order.push(id);
      if (this.order.length > MAX_REMEMBERED_IDS) {
        this.seen.delete(this.order.shift());
      }
    }
  }

  class RealtimeClient {
    constructor(options) {
      if (!options || !options.url) throw new Error("RealtimeClient needs a url");
      this.url = options.url;
      this.mode = options.mode === "desk" ? "desk" : "customer";
      this.threadId = options.threadId || null;
      this.fetchMessages = options.fetchMessages || null;
      this.onMessage = options.onMessage || noop;
      this.onDelta = options.onDelta || noop;
      this.onThread = options.onThread || noop;
      this.onTyping = options.onTyping || noop;
      this.onEvent = options.onEvent || noop;
      this.onStatus = options.onStatus || noop;
      this.onError = options.onError || noop;
      this.WebSocket = options.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null);
      this.timers = options.timers || {
        setTimeout: (fn, ms) => setTimeout(fn, ms),
        clearTimeout: (handle) => clearTimeout(handle),
        now: () => Date.now(),
      };
      this.random = options.random || Math.random;
      this.backoffBase = options.backoffBase || 500;
      this.backoffMax = options.backoffMax || 30000;
      this.heartbeatMs = options.heartbeatMs || 25000;
      this.staleMs = options.staleMs || 60000;
      this.stableMs = options.stableMs || 5000;
      this.typingRepeatMs = options.typingRepeatMs || 2500;

      this.threads = new Map();
      this.subscriptions = new Set();
      this.socket = null;
      this.attempt = 0;
      this.stopped = true;
      this.openedAt = 0;
      this.lastFrameAt = 0;
      this.reconnectTimer = null;
      this.heartbeatTimer = null;
      this.queue = Promise.resolve();
      this.typingSent = new Map();
      if (this.mode === "customer" && this.threadId) {
        this.threads.set(this.threadId, new ThreadState(options.after || 0));
      }
    }

    // --- Public API ----------------------------------------------------------------

    connect() {
      this.stopped = false;
      this._open();
    }

    close() {
      this.stopped = true;
      this._clearTimers();
      if (this.socket) {
        const socket = this.socket;
        this.socket = null;
        socket.close(1000);
      }
      this.onStatus("closed");
    }

    /** The highest seq this client has of a thread. */
    lastSeq(threadId) {
      const state = this.threads.get(threadId || this.threadId);
      return state ? state.lastSeq : 0;
    }

    /** Desk: follow a thread. The server first sends its messages after `after` (the
     * last seq the caller already shows, 0 for all); from then on the thread's messages
     * arrive once each, in order, gaps filled. Messages of threads not followed are
     * passed on as they come (notifications for lists), without that bookkeeping. */
    subscribe(threadId, after) {
      if (!this.subscriptions.has(threadId)) {
        this.threads.set(threadId, new ThreadState(typeof after === "number" ? after : 0));
        this.subscriptions.add(threadId);
      }
      this._send({ type: "subscribe", thread: threadId, after: this.lastSeq(threadId) });
    }

    unsubscribe(threadId) {
      this.subscriptions.delete(threadId);
      this.threads.delete(threadId);
      this._send({ type: "unsubscribe", thread: threadId });
    }

    /** Tell the other side whether this user is typing (changes, and "still typing"). */
    typing(active, threadId) {
      const key = threadId || "";
      const now = this.timers.now();
      const last = this.typingSent.get(key);
      if (last && last.active === active && (!active || now - last.at < this.typingRepeatMs)) {
        return;
      }
      this.typingSent.set(key, { active: active, at: now });
      const frame = { type: "typing", active: !!active };
      if (this.mode === "desk") frame.thread = threadId;
      this._send(frame);
    }

    /** Desk: "online" or "busy". */
    setPresence(status) {
      this._send({ type: "presence", status: status });
    }

    // --- Connection ----------------------------------------------------------------

    _socketUrl() {
      if (this.mode === "customer" && this.threadId) {
        return withAfter(this.url, this.lastSeq(this.threadId));
      }
      return this.url;
    }

    _open() {
      if (this.stopped || !this.WebSocket) return;
      this.onStatus("connecting");
      let socket;
      try {
        socket = new this.WebSocket(this._socketUrl());
      } catch (error) {
        this._scheduleReconnect();
        return;
      }
      this.socket = socket;
      socket.onopen = () => {
        if (this.socket !== socket) return;
        this.openedAt = this.timers.now();
        this.lastFrameAt = this.openedAt;
        this.onStatus("open");
        // Desk: ask again for every followed thread's messages since the last seq.
        this.subscriptions.forEach((threadId) => {
          this._send({ type: "subscribe", thread: threadId, after: this.lastSeq(threadId) });
        });
        this._heartbeat();
      };
      socket.onmessage = (event) => {
        if (this.socket !== socket) return;
        this.lastFrameAt = this.timers.now();
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        // One frame at a time: a gap fetch finishes before the next frame is handled.
        this.queue = this.queue
          .then(() => this._handle(frame))
          .catch((error) => this.onError({ type: "error", code: "client", message: String(error) }));
      };
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        this.socket = null;
        this._clearTimers();
        const code = event && event.code;
        if (FATAL_CLOSE_CODES.has(code)) {
          this.stopped = true;
          this.onStatus("refused");
          return;
        }
        if (this.openedAt && this.timers.now() - this.openedAt >= this.stableMs) {
          this.attempt = 0; // it was a good connection: start the backoff afresh
        }
        this.openedAt = 0;
        this.onStatus("closed");
        this._scheduleReconnect();
      };
      socket.onerror = () => {};
    }

    /** Exponential backoff with "equal jitter": half the delay fixed, half random. */
    nextDelay() {
      const ceiling = Math.min(this.backoffMax, this.backoffBase * Math.pow(2, this.attempt));
      this.attempt += 1;
      return ceiling / 2 + this.random() * (ceiling / 2);
    }

    _scheduleReconnect() {
      if (this.stopped) return;
      const delay = this.nextDelay();
      this.reconnectTimer = this.timers.setTimeout(() => {
        this.reconnectTimer = null;
        this._open();
      }, delay);
    }

    _heartbeat() {
      this.heartbeatTimer = this.timers.setTimeout(() => {
        this.heartbeatTimer = null;
        if (!this.socket) return;
        if (this.timers.now() - this.lastFrameAt > this.staleMs) {
          // Half-open connection: nothing came back for too long.
          const socket = this.socket;
          socket.close(4000);
          if (socket.onclose) socket.onclose({ code: 4000 });
          return;
        }
        this._send({ type: "heartbeat" });
        this._heartbeat();
      }, this.heartbeatMs);
    }

    _clearTimers() {
      if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
      if (this.heartbeatTimer !== null) this.timers.clearTimeout(this.heartbeatTimer);
      this.reconnectTimer = null;
      this.heartbeatTimer = null;
    }

    _send(frame) {
      if (this.socket && this.socket.readyState === 1) {
        this.socket.send(JSON.stringify(frame));
      }
    }

    // --- Frames --------------------------------------------------------------------

    _state(threadId) {
      let state = this.threads.get(threadId);
      if (!state) {
        state = new ThreadState(0);
        this.threads.set(threadId, state);
      }
      return state;
    }

    async _handle(frame) {
      switch (frame.type) {
        case "message.created":
          return this._messageCreated(frame);
        case "message.delta":
          return this._delta(frame);
        case "thread.updated":
        case "thread.created":
          return this.onThread(frame.thread, frame);
        case "typing":
          return this.onTyping(frame);
        case "error":
          return this.onError(frame);
        case "heartbeat.ack":
          return undefined;
        default:
          return this.onEvent(frame);
      }
    }

    _gap(frame, state, threadId) {
      const message = frame.message;
      if (this.mode === "customer") {
        // Customers see a subsequence of seqs: the server says which public one came last.
        const previous = typeof frame.prev_seq === "number" ? frame.prev_seq : message.seq - 1;
        return previous > state.lastSeq;
      }
      // Staff see every seq of a thread: anything but the next one is a gap.
      return message.seq > state.lastSeq + 1;
    }

    _follows(threadId) {
      return this.mode === "customer" || this.subscriptions.has(threadId);
    }

    async _messageCreated(frame) {
      const message = frame.message;
      const threadId = message.thread || frame.thread || this.threadId;
      if (!this._follows(threadId)) {
        this.onMessage(message, threadId);
        return;
      }
      const state = this._state(threadId);
      if (state.seen.has(message.id)) return;
      if (this.fetchMessages && this._gap(frame, state, threadId)) {
        await this._fillGap(threadId, state);
      }
      this._deliver(threadId, state, message);
    }

    async _fillGap(threadId, state) {
      for (let page = 0; page < 100; page += 1) {
        const body = await this.fetchMessages(threadId, state.lastSeq);
        const results = (body && body.results) || [];
        results.forEach((message) => this._deliver(threadId, state, message));
        if (!body || !body.has_more || results.length === 0) return;
      }
    }

    _deliver(threadId, state, message) {
      if (state.seen.has(message.id)) return;
      state.remember(message.id);
      state.streams.delete(message.id);
      if (message.seq > state.lastSeq) state.lastSeq = message.seq;
      this.onMessage(message, threadId);
    }

    _delta(frame) {
      const threadId = frame.thread || this.threadId;
      if (!this._follows(threadId)) {
        this.onDelta(frame, frame.delta);
        return;
      }
      const state = this._state(threadId);
      if (state.seen.has(frame.message_id)) return; // the stored message is already here
      const text = (state.streams.get(frame.message_id) || "") + frame.delta;
      state.streams.set(frame.message_id, text);
      this.onDelta(frame, text);
    }
  }

  function getJson(fetchImpl, url, headers, credentials) {
    return fetchImpl(url, { headers: headers, credentials: credentials }).then((response) => {
      if (!response.ok) throw new Error("GET " + url + " answered " + response.status);
      return response.json();
    });
  }

  /** REST catch-up for the widget: GET /api/v1/threads/{id}/messages/?after= */
  function customerFetcher(options) {
    const base = (options.baseUrl || "").replace(/\/$/, "");
    const fetchImpl = options.fetch || fetch;
    return function (threadId, after) {
      const url = base + "/api/v1/threads/" + threadId + "/messages/?limit=200&after=" + after;
      // The thread token is the credential: no cookies, even when the widget is
      // embedded on another site (the API allows it no credentialed CORS).
      return getJson(fetchImpl, url, { Authorization: "Bearer " + options.token }, "omit");
    };
  }

  /** REST catch-up for the desk: GET /api/v1/desk/threads/{id}/messages/?after=
   * (the session cookie, or a DRF token). */
  function deskFetcher(options) {
    const base = ((options && options.baseUrl) || "").replace(/\/$/, "");
    const fetchImpl = (options && options.fetch) || fetch;
    const headers = options && options.token ? { Authorization: "Token " + options.token } : {};
    return function (threadId, after) {
      const url = base + "/api/v1/desk/threads/" + threadId + "/messages/?limit=200&after=" + after;
      return getJson(fetchImpl, url, headers, "same-origin");
    };
  }

  return {
    RealtimeClient: RealtimeClient,
    customerFetcher: customerFetcher,
    deskFetcher: deskFetcher,
    withAfter: withAfter,
    FATAL_CLOSE_CODES: FATAL_CLOSE_CODES,
  };
});
