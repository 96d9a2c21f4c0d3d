// The gateway's event stream (SSE) read with fetch, so the bearer token goes in a header (EventSource cannot
// send one). Reconnects after a drop and resumes with Last-Event-ID, as the gateway's ids are CouchDB seqs.

import { token } from "./api.js";

/** Parse SSE text incrementally: feed(chunk) calls onMessage({id, event, data}) per complete message. */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.lastId = null;
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
  }

  feed(chunk) {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.onMessage({ id: this.lastId, event: this.event || "message", data: this.data.join("\n") });
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.lastId = value;
  }
}

/**
 * Follow /api/events. onEvent(cloudEvent, id) for each event; onState("connecting" | "live" | "down", detail).
 * `since`: null = from now on, "0" = from the beginning, or a previous id.
 */
export class EventStream {
  constructor({ since = null, types = null, onEvent, onState = () => {}, retryMs = 2000 }) {
    this.lastId = since;
    this.types = types;
    this.onEvent = onEvent;
    this.onState = onState;
    this.retryMs = retryMs;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.onState("connecting");
      try {
        await this.once();
        if (!this.stopped) this.onState("down", "the gateway closed the stream");
      } catch (error) {
        if (this.stopped) return;
        this.onState("down", String(error.message || error));
        if (error.status === 401 || error.status === 403) return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async once() {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token.get()}` };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    const url = this.types ? `/api/events?types=${encodeURIComponent(this.types)}` : "/api/events";
    const response = await fetch(url, { headers, signal: this.controller.signal, cache: "no-store" });
    if (!response.ok) {
      const error = new Error(`${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    this.onState("live");
    const parser = new SseParser((message) => {
      this.lastId = message.id ?? this.lastId;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onEvent(event, message.id);
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  }
}

/** One app-wide stream that views subscribe to: subscribe(fn) → unsubscribe function. */
export class EventBus {
  constructor() {
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.recent = [];
    this.stream = null;
    this.state = "down";
  }

  start() {
    this.stop();
    this.stream = new EventStream({
      onEvent: (event, id) => {
        this.recent.unshift({ event, id });
        this.recent.length = Math.min(this.recent.length, 500);
        for (const listener of this.listeners) listener(event, id);
      },
      onState: (state, detail) => {
        this.state = state;
        for (const listener of this.stateListeners) listener(state, detail);
      },
    }).start();
  }

  stop() {
    if (this.stream) this.stream.stop();
    this.stream = null;
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }
}

/** "org.prodflow.job.completed" → "job.completed". */
export const shortType = (type) => String(type || "").replace(/^org\.prodflow\./, "");
