// Tests of static/supportdesk/realtime.js with a fake WebSocket and fake timers.
// Run: node --test tests/realtime/js/ (pytest runs it: tests/realtime/test_client_js.py).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const { RealtimeClient, customerFetcher } = require(
  path.join(__dirname, "..", "..", "..", "static", "supportdesk", "realtime.js"),
);

class FakeSocket {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen();
  }
  frame(body) {
    this.onmessage({ data: JSON.stringify(body) });
  }
  drop(code) {
    this.readyState = 3;
    this.onclose({ code: code || 1006 });
  }
  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
}
FakeSocket.all = [];

class FakeTimers {
  constructor() {
    this.time = 0;
    this.pending = new Map();
    this.next = 1;
    this.delays = [];
  }
  setTimeout(fn, ms) {
    const id = this.next++;
    this.pending.set(id, { fn, at: this.time + ms });
    this.delays.push(ms);
    return id;
  }
  clearTimeout(id) {
    this.pending.delete(id);
  }
  now() {
    return this.time;
  }
  advance(ms) {
    this.time += ms;
    for (const [id, timer] of [...this.pending].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= this.time && this.pending.has(id)) {
        this.pending.delete(id);
        timer.fn();
      }
    }
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function message(seq, id, thread) {
  return { id: id || `m${seq}`, thread: thread || "t1", seq, role: "user", content: `#${seq}` };
}

function customer(options) {
  FakeSocket.all = [];
  const timers = new FakeTimers();
  const received = [];
  const fetches = [];
  const client = new RealtimeClient({
    url: "ws://server/ws/threads/t1/?token=secret",
    threadId: "t1",
    WebSocket: FakeSocket,
    timers,
    random: () => 0.5,
    onMessage: (m) => received.push(m.id),
    fetchMessages: async (threadId, after) => {
      fetches.push(after);
      return options && options.rest ? options.rest(after) : { results: [], has_more: false };
    },
    ...(options && options.extra),
  });
  return { client, timers, received, fetches };
}

test("it connects with after=0 and hands on catch-up messages in order", async () => {
  const { client, received } = customer();
  client.connect();
  const socket = FakeSocket.last();
  assert.equal(socket.url, "ws://server/ws/threads/t1/?token=secret&after=0");
  socket.open();
  socket.frame({ type: "message.created", message: message(1), prev_seq: 0 });
  socket.frame({ type: "message.created", message: message(3), prev_seq: 1 });
  await settle();
  assert.deepEqual(received, ["m1", "m3"]);
  assert.equal(client.lastSeq(), 3);
});

test("it reconnects with after=<last seq>", async () => {
  const { client, timers } = customer();
  client.connect();
  FakeSocket.last().open();
  FakeSocket.last().frame({ type: "message.created", message: message(4), prev_seq: 0 });
  await settle();
  FakeSocket.last().drop(1012);
  timers.advance(60000);
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(FakeSocket.last().url, "ws://server/ws/threads/t1/?token=secret&after=4");
});

test("it backs off exponentially with jitter, capped", async () => {
  FakeSocket.all = [];
  const timers = new FakeTimers();
  let draw = 0;
  const client = new RealtimeClient({
    url: "ws://server/ws/threads/t1/?token=x",
    threadId: "t1",
    WebSocket: FakeSocket,
    timers,
    random: () => [0, 1][draw++ % 2],
    backoffBase: 100,
    backoffMax: 1000,
  });
  client.connect();
  for (let i = 0; i < 6; i += 1) {
    FakeSocket.last().drop(1006);
    timers.advance(5000);
  }
  // Equal jitter: between half the ceiling and the ceiling; the ceiling doubles to 1000.
  assert.deepEqual(timers.delays, [50, 200, 200, 800, 500, 1000]);
});

test("it starts the backoff afresh after a connection that lasted", async () => {
  const { client, timers } = customer({ extra: { backoffBase: 100, stableMs: 1000 } });
  client.connect();
  FakeSocket.last().drop(1006);
  timers.advance(1000);
  FakeSocket.last().drop(1006);
  timers.advance(1000);
  FakeSocket.last().open();
  timers.advance(2000);
  FakeSocket.last().drop(1006);
  const reconnectDelays = timers.delays.filter((d) => d !== 25000);
  assert.deepEqual(reconnectDelays, [75, 150, 75]);
});

test("it stops reconnecting when the server refuses the token", async () => {
  const statuses = [];
  const { client, timers } = customer({ extra: { onStatus: (s) => statuses.push(s) } });
  client.connect();
  FakeSocket.last().drop(4403);
  timers.advance(60000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(statuses.at(-1), "refused");
});

test("it drops a message it already has", async () => {
  const { client, received } = customer();
  client.connect();
  const socket = FakeSocket.last();
  socket.open();
  socket.frame({ type: "message.created", message: message(1), prev_seq: 0 });
  socket.frame({ type: "message.created", message: message(1), prev_seq: 0 });
  await settle();
  assert.deepEqual(received, ["m1"]);
});

test("it fetches a gap from the REST list before the live message", async () => {
  const { client, received, fetches } = customer({
    rest: (after) => ({ results: [message(2), message(5)].filter((m) => m.seq > after), has_more: false }),
  });
  client.connect();
  const socket = FakeSocket.last();
  socket.open();
  socket.frame({ type: "message.created", message: message(1), prev_seq: 0 });
  socket.frame({ type: "message.created", message: message(7), prev_seq: 5 });
  socket.frame({ type: "message.created", message: message(5), prev_seq: 2 }); // late live copy
  await settle();
  await settle();
  assert.deepEqual(fetches, [1]);
  assert.deepEqual(received, ["m1", "m2", "m5", "m7"]);
});

test("it does not see a gap across messages hidden from customers", async () => {
  const { client, received, fetches } = customer();
  client.connect();
  FakeSocket.last().open();
  FakeSocket.last().frame({ type: "message.created", message: message(1), prev_seq: 0 });
  FakeSocket.last().frame({ type: "message.created", message: message(9), prev_seq: 1 });
  await settle();
  assert.deepEqual(fetches, []);
  assert.deepEqual(received, ["m1", "m9"]);
});

test("it streams deltas, then lets the stored message replace them", async () => {
  const streamed = [];
  const { client, received } = customer({ extra: { onDelta: (f, text) => streamed.push(text) } });
  client.connect();
  const socket = FakeSocket.last();
  socket.open();
  socket.frame({ type: "message.delta", message_id: "m2", seq: 2, delta: "Hel" });
  socket.frame({ type: "message.delta", message_id: "m2", seq: 2, delta: "lo" });
  socket.frame({ type: "message.created", message: message(2), prev_seq: 0 });
  socket.frame({ type: "message.delta", message_id: "m2", seq: 2, delta: "late" });
  await settle();
  assert.deepEqual(streamed, ["Hel", "Hello"]);
  assert.deepEqual(received, ["m2"]);
});

test("it sends heartbeats and reconnects when the server goes silent", async () => {
  const { client, timers } = customer({ extra: { heartbeatMs: 100, staleMs: 250 } });
  client.connect();
  const socket = FakeSocket.last();
  socket.open();
  timers.advance(100);
  assert.deepEqual(socket.sent, [{ type: "heartbeat" }]);
  timers.advance(100);
  timers.advance(100);
  assert.equal(socket.closedWith, 4000);
  timers.advance(60000);
  assert.equal(FakeSocket.all.length, 2);
});

test("it sends typing changes only, repeating a held state now and then", async () => {
  const { client, timers } = customer({ extra: { typingRepeatMs: 1000 } });
  client.connect();
  const socket = FakeSocket.last();
  socket.open();
  client.typing(true);
  client.typing(true);
  timers.advance(1500);
  client.typing(true);
  client.typing(false);
  client.typing(false);
  assert.deepEqual(
    socket.sent.filter((f) => f.type === "typing").map((f) => f.active),
    [true, true, false],
  );
});

test("the desk re-subscribes with each thread's last seq after a reconnect", async () => {
  FakeSocket.all = [];
  const timers = new FakeTimers();
  const received = [];
  const client = new RealtimeClient({
    url: "ws://server/ws/desk/",
    mode: "desk",
    WebSocket: FakeSocket,
    timers,
    random: () => 0.5,
    onMessage: (m) => received.push(m.id),
    fetchMessages: async () => ({ results: [], has_more: false }),
  });
  client.connect();
  FakeSocket.last().open();
  client.subscribe("t1", 0);
  FakeSocket.last().frame({ type: "message.created", thread: "t1", message: message(1) });
  FakeSocket.last().frame({ type: "message.created", thread: "t1", message: message(2) });
  await settle();
  FakeSocket.last().drop(1012);
  timers.advance(60000);
  FakeSocket.last().open();
  assert.deepEqual(FakeSocket.last().sent[0], { type: "subscribe", thread: "t1", after: 2 });
  assert.equal(FakeSocket.last().url, "ws://server/ws/desk/");
});

test("the desk fills a gap in a followed thread and passes other threads' messages on", async () => {
  FakeSocket.all = [];
  const received = [];
  const fetches = [];
  const client = new RealtimeClient({
    url: "ws://server/ws/desk/",
    mode: "desk",
    WebSocket: FakeSocket,
    timers: new FakeTimers(),
    onMessage: (m, thread) => received.push(`${thread}:${m.id}`),
    fetchMessages: async (thread, after) => {
      fetches.push([thread, after]);
      return { results: [message(2)], has_more: false };
    },
  });
  client.connect();
  FakeSocket.last().open();
  client.subscribe("t1", 1);
  FakeSocket.last().frame({ type: "message.created", thread: "t1", message: message(3) });
  FakeSocket.last().frame({ type: "message.created", thread: "t2", message: message(9, "x9", "t2") });
  await settle();
  await settle();
  assert.deepEqual(fetches, [["t1", 1]]);
  assert.deepEqual(received, ["t1:m2", "t1:m3", "t2:x9"]);
});

test("the customer fetcher asks the REST list after the last seq with the token", async () => {
  const calls = [];
  const fetcher = customerFetcher({
    baseUrl: "https://desk.example/",
    token: "tok",
    fetch: async (url, init) => {
      calls.push([url, init.headers.Authorization]);
      return { ok: true, json: async () => ({ results: [], has_more: false }) };
    },
  });
  await fetcher("t1", 7);
  assert.deepEqual(calls, [
    ["https://desk.example/api/v1/threads/t1/messages/?limit=200&after=7", "Bearer tok"],
  ]);
});
