/**
 * Messages to the kernel, and whether a kernel still answers for this widget.
 *
 * Every message carries an id and Python answers `<kind>-response` with that id. The view
 * is cut off ("gone") when a send throws (the kernel restarted: "Cannot send"), when the
 * widget manager marks the model's comm dead (`comm_live_update`), when the kernel handled
 * a message (its idle status came back) without an answer, or when a message waits while the
 * kernel sits idle (a notebook reopened from saved state: the model has no comm, and sends
 * go nowhere). A kernel that is busy gets 15 s before the view says so; it is never called
 * gone for being busy.
 */
import type { Model } from "./context";

export interface Reply {
  kind: string;
  id: string;
  ok: boolean;
  error?: string;
  // biome-ignore lint/suspicious/noExplicitAny: replies are plain JSON of several shapes
  [key: string]: any;
}

export type Link = "unknown" | "live" | "slow" | "gone";

interface Pending {
  resolve: (reply: Reply) => void;
  kind: string;
  sent: number;
  handled: number; // when the kernel's idle status for it came back (0: not yet)
}

interface KernelLike {
  status?: string;
}

export const GONE = "This widget is no longer connected to a kernel: run its cell again.";
const SLOW_MS = 15000;
const IDLE_MS = 3000; // an idle kernel that has not answered by then never will
const HANDLED_MS = 2000; // an answer follows the idle status within this, if it comes at all

let counter = 0;

export class Connection {
  link: Link = "unknown";
  // #private fields: the minifier shortens their names (the bundle has a size budget).
  #pending = new Map<string, Pending>();
  #timer = 0;
  #idleSince = 0;
  #model: Model;
  #changed: (link: Link) => void;

  constructor(model: Model, changed: (link: Link) => void) {
    this.#model = model;
    this.#changed = changed;
  }

  /** Send `{kind, id, ...content}` (and binary buffers); resolves with the reply (ok false
   * once gone), whose own buffers are in `buffers`. */
  send(kind: string, content: Record<string, unknown> = {}, buffers?: ArrayBuffer[]): Promise<Reply> {
    const id = `${Date.now().toString(36)}-${++counter}`;
    return new Promise((resolve) => {
      if (this.link === "gone") {
        resolve({ kind: `${kind}-response`, id, ok: false, error: GONE });
        return;
      }
      const entry: Pending = { resolve, kind, sent: Date.now(), handled: 0 };
      this.#pending.set(id, entry);
      const status = (msg: { content?: { execution_state?: string } }): void => {
        if (msg?.content?.execution_state === "idle") entry.handled = Date.now();
      };
      try {
        this.#model.send({ kind, id, ...content }, { iopub: { status } }, buffers);
      } catch {
        this.lose(); // "Cannot send": the kernel behind this view was restarted or shut down
        return;
      }
      if (!this.#timer) this.#timer = window.setInterval(() => this.#check(), 500);
    });
  }

  /** A message from the kernel: resolves the request it answers. */
  receive(msg: Reply, buffers?: DataView[]): void {
    const entry = this.#pending.get(msg.id);
    if (!entry || msg.kind !== `${entry.kind}-response`) return;
    this.#pending.delete(msg.id);
    entry.resolve({ ...msg, buffers });
    this.#set("live");
  }

  /** The model's comm died (kernel restart, websocket lost): nothing will answer again. */
  lose(): void {
    if (this.link === "gone") return;
    this.#set("gone");
    for (const [id, entry] of this.#pending) {
      entry.resolve({ kind: `${entry.kind}-response`, id, ok: false, error: GONE });
    }
    this.#pending.clear();
  }

  dispose(): void {
    window.clearInterval(this.#timer);
  }

  #check(): void {
    const now = Date.now();
    if (!this.#pending.size) {
      window.clearInterval(this.#timer);
      this.#timer = 0;
      return;
    }
    const kernel = (this.#model.widget_manager as { kernel?: KernelLike } | undefined)?.kernel;
    const idle = kernel?.status === "idle";
    this.#idleSince = idle ? this.#idleSince || now : 0;
    let slow = false;
    for (const entry of this.#pending.values()) {
      const unanswered = entry.handled && now - entry.handled > HANDLED_MS;
      const ignored = idle && now - entry.sent > IDLE_MS && now - this.#idleSince > IDLE_MS;
      if (unanswered || ignored) {
        this.lose();
        return;
      }
      slow ||= now - entry.sent > SLOW_MS;
    }
    if (slow) this.#set("slow");
  }

  #set(link: Link): void {
    if (this.link === link || this.link === "gone") return;
    this.link = link;
    this.#changed(link);
  }
}
