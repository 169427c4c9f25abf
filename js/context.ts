/**
 * What every panel of one view shares: the model, ids made for this view only, the
 * connection to the kernel, the run shown, the fields marked invalid, and a small event bus
 * between panels. Nothing here is module-level state: two views (of one widget or of two)
 * never share an id, a radio group name or a listener.
 */
import type { AnyModel } from "@anywidget/types";
import { bodyText, type Field, sending } from "./body";
import { Connection, type Link, type Reply } from "./connection";
import { h } from "./dom";

// biome-ignore lint/suspicious/noExplicitAny: trait values are plain JSON of several types
export type Model = AnyModel<Record<string, any>>;

export interface Schema {
  /** niji 7's hand-tuned table (its seed control, random seeds drawn by Python). */
  builtin?: boolean;
  /** Midjourney suffixes are read from the prompt. */
  suffix?: boolean;
  fields: Field[];
  task_statuses: string[];
  task_status_labels?: Record<string, string>;
}

/** One entry of the `tasks` trait (docs/widget-contract.md). */
export interface Run {
  id: string;
  task_id: string;
  state: string;
  status: string;
  progress: number;
  outputs: string[];
  error: string;
  note: string;
  started_at: number;
  finished_at: number | null;
  request_json: string;
  seed?: number;
  seed_random?: boolean;
  stalled?: boolean;
  history_id?: number | null;
  summary?: string;
}

/** Events between the panels of one view. */
export type Topic =
  | "request" // a field changed here: recompute the preview (same frame)
  | "runs" // the `tasks` trait changed
  | "shown" // another run was picked in the task panel
  | "validity" // the set of invalid fields changed
  | "link" // the connection to the kernel changed
  | "generate" // Ctrl+Enter anywhere in the view
  | "images" // image bytes arrived: ctx.src may give more
  | "import" // an image file was dropped on the view (the File, and why it cannot be read, or "")
  | "sheet"; // a contact sheet was dropped on the view (the `sweep-sheet` reply)

export const ACTIVE = new Set(["starting", "running"]);

export class Ctx {
  readonly root: HTMLElement;
  readonly schema: Schema;
  readonly conn: Connection;
  /** Run id shown by the task and results panels; null follows the newest run. */
  selected: string | null = null;
  /** Field name -> why its typed value cannot be sent. */
  readonly invalid = new Map<string, string>();
  /** What an img shows for an output URL ("" while it cannot be shown): set by the results panel. */
  src: (url: string) => string = () => "";
  /** Show a tab by id (a lazily loaded one is loaded first): set by render. */
  tab: (id: string) => Promise<void> = async () => {};
  readonly #modules = new Map<string, Promise<unknown>>();
  // #private fields: the minifier shortens their names (the bundle has a size budget).
  readonly #prefix = `siray-${Math.random().toString(36).slice(2, 9)}`;
  #n = 0;
  readonly #cleanups: Array<() => void> = [];
  readonly #topics = new Map<Topic, Set<(...args: unknown[]) => void>>();
  readonly #live: HTMLElement;

  constructor(
    readonly model: Model,
    root: HTMLElement,
  ) {
    this.root = root;
    this.schema = model.get("schema") as Schema;
    this.#live = h("span", { cls: "offscreen", "aria-live": "polite" });
    root.append(this.#live);
    this.conn = new Connection(model, (link: Link) => this.emit("link", link));
    this.cleanup(() => this.conn.dispose());
    this.on("comm_live_update", () => this.conn.lose());
    this.on("msg:custom", (msg, buffers) => this.conn.receive(msg as Reply, buffers as DataView[]));
  }

  get fields(): Field[] {
    return this.schema.fields;
  }

  /** An id unique in the page (per view, never per module). */
  id(stem: string): string {
    return `${this.#prefix}-${stem}-${++this.#n}`;
  }

  // biome-ignore lint/suspicious/noExplicitAny: trait values are plain JSON
  get(name: string): any {
    return this.model.get(name);
  }

  /** The exact body Generate sends now (byte-equal to Python's `request_json`). */
  body(): string {
    return bodyText(
      this.fields,
      sending((name) => this.get(name), this.schema.builtin !== false),
    );
  }

  /** Write a trait the front end owns and send it; the preview follows in the same frame. */
  commit(name: string, value: unknown): void {
    this.model.set(name, value);
    this.model.save_changes();
    this.emit("request");
  }

  /** A model event, removed with the view. */
  on(event: string, cb: (...args: unknown[]) => void): void {
    this.model.on(event, cb);
    this.cleanup(() => this.model.off(event, cb));
  }

  send(kind: string, content?: Record<string, unknown>, buffers?: ArrayBuffer[]): Promise<Reply> {
    return this.conn.send(kind, content, buffers);
  }

  /**
   * A lazily loaded module (js/lazy/<name>.ts, see js/panels/panel.ts), once per view: its text
   * comes from the kernel (`load-module`), is imported from a blob: URL, its CSS goes in a
   * <style> in the view, and its default export is called with its settings from Python.
   * Rejects with the reason (no kernel, not built).
   */
  load<T>(name: string): Promise<T> {
    let loading = this.#modules.get(name);
    if (!loading) {
      loading = this.send("load-module", { name }).then(async (r) => {
        if (!r.ok) throw Error(r.error);
        const url = URL.createObjectURL(new Blob([r.code], { type: "text/javascript" }));
        try {
          const made = (await import(url)).default(r.config);
          this.root.append(h("style", {}, r.css));
          return made;
        } finally {
          URL.revokeObjectURL(url);
        }
      });
      this.#modules.set(name, loading);
    }
    return loading as Promise<T>;
  }

  get gone(): boolean {
    return this.conn.link === "gone";
  }

  sub(topic: Topic, cb: (...args: unknown[]) => void): void {
    const set = this.#topics.get(topic) ?? new Set();
    set.add(cb);
    this.#topics.set(topic, set);
  }

  emit(topic: Topic, ...args: unknown[]): void {
    for (const cb of this.#topics.get(topic) ?? []) cb(...args);
  }

  announce(text: string): void {
    this.#live.textContent = text;
  }

  cleanup(fn: () => void): void {
    this.#cleanups.push(fn);
  }

  dispose(): void {
    for (const fn of this.#cleanups.splice(0)) fn();
    this.#topics.clear();
  }

  runs(): Run[] {
    return (this.get("tasks") as Run[] | undefined) ?? [];
  }

  shownRun(): Run | undefined {
    const all = this.runs();
    return (this.selected ? all.find((r) => r.id === this.selected) : undefined) ?? all.at(-1);
  }

  /** How a run's status reads: the run state where it says more than the last status seen. */
  word(run: Run | undefined): string {
    if (!run) return "";
    if (run.stalled) return "stalled"; // only ever true while the run is going
    return run.state === "cancelled" || run.state === "error" || !run.status ? run.state : run.status;
  }

  label(status: string): string {
    return this.schema.task_status_labels?.[status] ?? status.replace(/_/g, " ").toLowerCase();
  }
}
