/**
 * What the kernel sends about runs (docs/widget-contract.md § History) and how values read.
 * Display only: which fields differ from the defaults, what matches a search, what a restore
 * sets, all of it is decided in Python.
 */
import type { Ctx } from "../context";

/** One run as the gallery lists it (a compact row of `history-query`). */
export interface Row {
  id: number;
  task_id: string | null;
  created_at: number;
  finished_at: number | null;
  state: string;
  status: string;
  progress: number;
  model: string;
  prompt: string;
  negative_prompt: string;
  aspect_ratio?: string;
  /** The fields that differ from the defaults (prompts and model aside). */
  changed: Record<string, unknown>;
  seed_used: number | null;
  starred: boolean;
  rating: number;
  tags: string[];
  note: string;
  origin: string;
  source: string;
  outputs: number;
  thumbs: Array<string | null>;
  images_state: string;
  fail_reason: string;
  error: string;
}

export interface StoredImage {
  index: number;
  url: string;
  file: string | null;
  thumb: string | null;
  media_type: string | null;
  width: number | null;
  height: number | null;
  error: string;
}

/** Everything about one run (`history-get`). */
export interface Details extends Omit<Row, "changed" | "thumbs" | "outputs" | "prompt" | "negative_prompt"> {
  active: boolean;
  request_json: string;
  params: Record<string, unknown>;
  changed: string[];
  prompt_text: string;
  submitted_at: number | null;
  timings: Record<string, number | null>;
  images_error: string;
  outputs: string[];
  images: StoredImage[];
  events: Array<{ at: number; state: string; status: string; progress: number }>;
}

/** A row of a comparison (`history-diff`, `read-image`). */
export interface DiffRow {
  name: string;
  label: string;
  a: unknown;
  b: unknown;
  differs: boolean;
}

/** A value as the user reads it. */
export function shown(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "on" : "off";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** A moment, as a date and time in the user's locale. */
export function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toLocaleString() : "—";
}

/** How long ago, short ("5 min ago"). */
export function ago(ms: number, now = Date.now()): string {
  const s = (now - ms) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/** Field labels of the schema the widget has (other fields keep their names). */
export function labels(ctx: Ctx): Record<string, string> {
  return Object.fromEntries(ctx.fields.map((f) => [f.name, f.label]));
}

/** The parameters that differ from the defaults, in a line ("Aspect ratio 16:9 · Stylize 250"). */
export function paramsText(row: Row, names: Record<string, string>): string {
  return Object.entries(row.changed)
    .filter(([name]) => name !== "seed")
    .map(([name, value]) => `${names[name] ?? name} ${shown(value)}`)
    .join(" · ");
}

/** How a run's state reads on its card (nothing for a plain success). */
export function stateText(row: Pick<Row, "state" | "progress">): string {
  if (row.state === "success") return "";
  if (row.state === "running" || row.state === "starting") return `${row.state} ${row.progress}%`;
  return row.state;
}
