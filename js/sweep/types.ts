/**
 * What the kernel sends about sweeps (docs/widget-contract.md § Sweep). Display only: values
 * are parsed, cells expanded, counts and prices worked out in Python.
 */

/** The module's settings from Python (siray_widgets/_widget_sweep.py). */
export interface SweepConfig {
  /** Request fields an axis may vary (labels and descriptions come from the schema). */
  fields: string[];
  /** Axes that are not request fields: prompt variants, prompt S/R, presets, replicates. */
  special: Array<{ name: string; label: string; hint: string; multiline: boolean }>;
  concurrency: number;
  max_concurrency: number;
  images_per_task: number;
  /** Largest prompt file read (bigger ones are refused in the page, nothing sent). */
  max_batch_chars: number;
  /** Largest contact sheet sent to the kernel. */
  max_sheet_bytes: number;
}

/** One axis as Python read it. */
export interface AxisInfo {
  slot: "x" | "y" | "z";
  kind: string;
  name: string;
  labels: string[];
  spec: string | null;
}

export interface Plan {
  total: number;
  reuse: number;
  follow: number;
  send: number;
  images: number;
  free: boolean;
  cost: string | null;
  cost_text: string;
  confirm_above: number;
  needs_confirmation: boolean;
  remaining: number | null;
  text: string;
}

export interface Session {
  tasks: number;
  text: string;
  remaining: number | null;
}

/** `sweep-preview`'s answer. */
export interface Preview {
  key: string;
  axes: AxisInfo[];
  seed: number | "random";
  presets: string[];
  shape: { columns: number; rows: number; pages: number };
  tasks: number;
  images: number;
  plan: Plan;
  session: Session;
  concurrency: number;
  /** A batch: how its prompt list was read (rows, and the columns a CSV gave them). */
  batch?: { rows: number; columns: string[] };
}

/** One cell as the grid shows it. */
export interface CellInfo {
  index: number;
  x: number | null;
  y: number | null;
  z: number | null;
  describe: string;
  state: string;
  status: string;
  progress: number;
  task_id: string | null;
  reason: string;
  /** How many thumbnails the kernel has kept for it. */
  thumbs: number;
  run_id: number | null;
  origin: string;
  seed: number;
  seed_used: number | null;
  version: number;
}

export interface Progress {
  total: number;
  finished: number;
  [state: string]: number;
}

/** A sweep in full (`sweep-run`, `sweep-state`). */
export interface SweepInfo {
  id: string;
  state: string;
  version: number;
  stopped_reason: string;
  progress: Progress;
  plan: Plan;
  session: Session;
  concurrency: number;
  shape: { columns: number; rows: number; pages: number };
  axes: AxisInfo[];
  seed: number | "random";
  cells: CellInfo[];
}

/** What changed (`sweep-update`, sent by the kernel while a sweep runs). */
export interface SweepUpdate {
  kind: "sweep-update";
  sweep: string;
  state: string;
  version: number;
  stopped_reason: string;
  progress: Progress;
  session: Session;
  cells: CellInfo[];
}

/** The form as sent in `sweep-preview` and `sweep-run`. */
export interface Form {
  x?: { axis: string; values: string };
  y?: { axis: string; values: string };
  z?: { axis: string; values: string };
  batch?: string;
  /** How the kernel reads `batch`: one prompt per line, or a CSV with a prompt column. */
  batch_format?: "text" | "csv";
  /** The prompt file's name (named in errors). */
  batch_name?: string;
  /** A contact sheet's sweep, used as saved while the form is untouched (`sweep-sheet`). */
  sheet?: string;
  seed: "shared" | "random";
  presets: string[];
}

export const SLOTS = ["x", "y", "z"] as const;
export type Slot = (typeof SLOTS)[number];

/** States in which a cell shows a Retry button. */
export const RETRYABLE = new Set(["failed", "refused", "cancelled"]);
/** States of a sweep still sending or following. */
export const GOING = new Set(["running", "cancelling"]);
