/**
 * The sweep's form: an axis picker and a value box per slot (X columns, Y rows, Z pages), the
 * batch prompts, the seed mode, the cells in flight, and the preset chips. The field choices,
 * labels and example values come from the schema the widget already has (`ctx.fields`) and
 * the module's config (the special axes); the values are parsed by Python only.
 */
import type { Field } from "../body";
import type { Ctx } from "../context";
import { btn, h, listen } from "../dom";
import { type AxisInfo, type Form, type Preview, SLOTS, type Slot, type SweepConfig } from "./types";

const SLOT_NAMES: Record<Slot, string> = { x: "X: columns", y: "Y: rows", z: "Z: pages" };

/** An example of what the value box takes for `f`, from its schema (never typed here). */
export function example(f: Field): string {
  if (f.enum) return f.enum.slice(0, 4).map(String).join(", ");
  if (f.type === "boolean") return "true, false";
  if (f.type === "string") return "one value per line";
  if (f.minimum !== null && f.maximum !== null) {
    return `${f.minimum}-${f.maximum} [5]   or   ${f.minimum}, .., ${f.maximum} (+step)`;
  }
  return "1, 2, 3";
}

export interface AxisRow {
  slot: Slot;
  row: HTMLElement;
  select: HTMLSelectElement;
  box: HTMLTextAreaElement;
  chips: HTMLElement;
  hint: HTMLElement;
}

export class SweepForm {
  readonly el: HTMLElement;
  readonly rows: Record<Slot, AxisRow>;
  readonly batch: HTMLTextAreaElement;
  readonly mode: HTMLSelectElement;
  readonly seed: HTMLSelectElement;
  readonly concurrency: HTMLInputElement;
  readonly presetBar: HTMLElement;
  readonly presetNote: HTMLElement;
  /** Presets picked, in the order they stack. */
  presets: string[] = [];
  /** The prompt file loaded into the batch box (its name and how the kernel reads it). */
  file: { name: string; format: "text" | "csv" } | null = null;
  /** A contact sheet's sweep, used as saved until the form is edited (`sweep-sheet`). */
  sheet: string | null = null;
  /** What the batch's prompt list was read as (rows, columns), or why not. */
  readonly batchNote: HTMLElement;
  readonly batchChips: HTMLElement;
  private readonly batchRow: HTMLElement;

  constructor(
    ctx: Ctx,
    config: SweepConfig,
    private readonly changed: () => void,
  ) {
    const byName = new Map(ctx.fields.map((f) => [f.name, f]));
    const fields = config.fields.map((n) => byName.get(n)).filter((f): f is Field => !!f);
    const pick = (slot: Slot): AxisRow => {
      const selectId = ctx.id(`sweep-axis-${slot}`);
      const boxId = ctx.id(`sweep-values-${slot}`);
      const hintId = ctx.id(`sweep-hint-${slot}`);
      const select = h(
        "select",
        { id: selectId, "data-axis": slot, "aria-describedby": hintId },
        h("option", { value: "" }, "— none —"),
        h("optgroup", { label: "Request fields" }, ...fields.map((f) => h("option", { value: f.name }, f.label))),
        h("optgroup", { label: "More" }, ...config.special.map((s) => h("option", { value: s.name }, s.label))),
      );
      const box = h("textarea", {
        id: boxId,
        rows: 1,
        "data-values": slot,
        "aria-describedby": hintId,
        spellcheck: "false",
        disabled: true,
      });
      const chips = h("div", { cls: "schips", "data-chips": slot, "aria-label": `${slot.toUpperCase()} values` });
      const hint = h("div", { cls: "shint", id: hintId, "aria-live": "polite" });
      const row = h(
        "div",
        { cls: "saxis", "data-slot": slot },
        h("label", { for: selectId, cls: "label" }, SLOT_NAMES[slot]),
        select,
        h("label", { for: boxId, cls: "offscreen" }, `${slot.toUpperCase()} values`),
        box,
        h("div", { cls: "sbelow" }, chips, hint),
      );
      listen(select, "change", () => {
        const name = select.value;
        const special = config.special.find((s) => s.name === name);
        const f = byName.get(name);
        box.disabled = !name;
        box.placeholder = special ? special.hint : f ? example(f) : "";
        box.rows = special?.multiline || (f?.type === "string" && !f.enum) ? 3 : 1;
        box.title = f?.description ?? special?.hint ?? "";
        this.changed();
        if (name) box.focus();
      });
      listen(box, "input", () => this.changed());
      return { slot, row, select, box, chips, hint };
    };
    this.rows = { x: pick("x"), y: pick("y"), z: pick("z") };

    const modeId = ctx.id("sweep-mode");
    this.mode = h(
      "select",
      { id: modeId, $: "sweep-mode" },
      h("option", { value: "grid" }, "Grid of values"),
      h("option", { value: "batch" }, "Batch: one run per prompt"),
    );
    const batchId = ctx.id("sweep-batch");
    this.batch = h("textarea", {
      id: batchId,
      $: "sweep-batch",
      rows: 4,
      placeholder:
        "One prompt per line; each may end in --flags (the controls set the rest). Or drop a .txt or .csv file here",
    });
    // A prompt file: read here (bounded), parsed by the kernel with batch.py's rules.
    const fileInput = h("input", {
      type: "file",
      accept: ".txt,.csv,text/plain,text/csv",
      hidden: true,
      $: "sweep-batch-input",
    });
    const load = btn(
      { $: "sweep-batch-file", title: "One prompt per line (.txt), or a CSV with a prompt column (.csv)" },
      "Load a prompt file…",
    );
    const forget = btn({ $: "sweep-batch-forget", hidden: true, title: "Read the box as one prompt per line" }, "×");
    const source = h("span", { cls: "muted", $: "sweep-batch-source" });
    this.batchNote = h("div", { cls: "shint", $: "sweep-batch-note", "aria-live": "polite" });
    this.batchChips = h("div", { cls: "schips", $: "sweep-batch-chips", "aria-label": "Prompts" });
    const showFile = (): void => {
      source.textContent = this.file ? `${this.file.name} (${this.file.format === "csv" ? "CSV" : "text"})` : "";
      forget.hidden = !this.file;
    };
    const read = async (f: File): Promise<void> => {
      if (f.size > config.max_batch_chars) {
        this.batchNote.textContent = `${f.name} is ${(f.size / 2 ** 20).toFixed(1)} MB: prompt files up to ${config.max_batch_chars / 2 ** 20} MB are read. Nothing was loaded.`;
        this.batchNote.dataset.kind = "error";
        return;
      }
      this.batch.value = await f.text();
      this.file = { name: f.name, format: /\.csv$/i.test(f.name) || f.type === "text/csv" ? "csv" : "text" };
      showFile();
      this.changed();
    };
    listen(load, "click", () => fileInput.click());
    listen(fileInput, "change", () => {
      const f = fileInput.files?.[0];
      fileInput.value = "";
      if (f) void read(f);
    });
    listen(forget, "click", () => {
      this.file = null;
      showFile();
      this.changed();
      this.batch.focus();
    });
    for (const type of ["dragover", "drop"]) {
      listen<DragEvent>(this.batch, type, (e) => {
        if (!e.dataTransfer?.types.includes("Files")) return;
        e.preventDefault();
        e.stopPropagation(); // a file for the box, not an image for the view
        const f = e.dataTransfer.files[0];
        if (type === "drop" && f) void read(f);
      });
    }
    this.batchRow = h(
      "div",
      { cls: "sbatch", hidden: true },
      h(
        "div",
        { cls: "row" },
        h("label", { for: batchId, cls: "label" }, "Prompts (rows)"),
        load,
        fileInput,
        source,
        forget,
      ),
      this.batch,
      this.batchNote,
      this.batchChips,
    );
    const seedId = ctx.id("sweep-seed");
    this.seed = h(
      "select",
      { id: seedId, $: "sweep-seed" },
      h("option", { value: "shared" }, "One seed for every cell"),
      h("option", { value: "random" }, "A random seed per cell"),
    );
    const flightId = ctx.id("sweep-concurrency");
    this.concurrency = h("input", {
      id: flightId,
      type: "number",
      $: "sweep-concurrency",
      min: 1,
      max: config.max_concurrency,
      value: config.concurrency,
    });
    this.presetBar = h("div", { cls: "schips", $: "sweep-presets", role: "group", "aria-label": "Presets" });
    this.presetNote = h("div", { cls: "muted shint", $: "sweep-preset-note", "aria-live": "polite" });
    for (const el of [this.batch, this.concurrency]) listen(el, "input", () => this.changed());
    for (const el of [this.seed]) listen(el, "change", () => this.changed());
    listen(this.mode, "change", () => {
      const batch = this.mode.value === "batch";
      this.batchRow.hidden = !batch;
      this.rows.y.row.hidden = batch;
      this.changed();
      if (batch) this.batch.focus();
    });

    this.el = h(
      "div",
      { cls: "sform" },
      h(
        "div",
        { cls: "row" },
        h("label", { for: modeId, cls: "label" }, "Sweep"),
        this.mode,
        h("label", { for: seedId, cls: "label" }, "Seed"),
        this.seed,
        h("label", { for: flightId, cls: "label" }, "In flight"),
        this.concurrency,
      ),
      this.batchRow,
      ...SLOTS.map((s) => this.rows[s].row),
      h("div", { cls: "row" }, h("span", { cls: "label" }, "Presets"), this.presetBar),
      this.presetNote,
    );
  }

  /** The preset chips (names from Python): a click stacks or unstacks one. */
  setPresets(list: Array<{ name: string; summary: string }>): void {
    this.presetBar.replaceChildren(
      ...list.map((p) => {
        const chip = btn({ cls: "chip", "data-preset": p.name, "aria-pressed": "false", title: p.summary }, p.name);
        listen(chip, "click", () => {
          const at = this.presets.indexOf(p.name);
          if (at >= 0) this.presets.splice(at, 1);
          else this.presets.push(p.name);
          this.showPresets();
          this.changed();
        });
        return chip;
      }),
    );
  }

  showPresets(): void {
    for (const chip of this.presetBar.querySelectorAll<HTMLButtonElement>("[data-preset]")) {
      const at = this.presets.indexOf(chip.dataset.preset ?? "");
      chip.setAttribute("aria-pressed", String(at >= 0));
      chip.dataset.order = at >= 0 ? String(at + 1) : "";
    }
  }

  /** The form as Python reads it (`sweep-preview`, `sweep-run`). */
  value(): Form {
    const form: Form = { seed: this.seed.value === "random" ? "random" : "shared", presets: [...this.presets] };
    const batch = this.mode.value === "batch";
    for (const slot of SLOTS) {
      const r = this.rows[slot];
      if (!r.select.value || (batch && slot === "y")) continue;
      form[slot] = { axis: r.select.value, values: r.box.value };
    }
    if (batch) {
      form.batch = this.batch.value;
      form.batch_format = this.file?.format ?? "text";
      if (this.file) form.batch_name = this.file.name;
    }
    if (this.sheet) form.sheet = this.sheet;
    return form;
  }

  /** Whether anything is asked at all (an axis chosen, or batch prompts). */
  empty(): boolean {
    const f = this.value();
    return !f.sheet && !f.x && !f.y && !f.z && !(f.batch ?? "").trim() && !f.presets.length;
  }

  flight(): number | null {
    const n = Number(this.concurrency.value);
    return Number.isInteger(n) && n >= 1 ? n : null;
  }

  /** Show each axis' values as chips (or the error on the axis it names). */
  show(axes: AxisInfo[], error: string, errorSlot: Slot | null): void {
    for (const slot of SLOTS) {
      const r = this.rows[slot];
      const axis = axes.find((a) => a.slot === slot);
      const shown = axis?.labels ?? [];
      const extra = shown.length > 40 ? shown.length - 40 : 0;
      r.chips.replaceChildren(
        ...shown.slice(0, 40).map((label) => h("span", { cls: "schip" }, label)),
        ...(extra ? [h("span", { cls: "muted" }, `+${extra} more`)] : []),
      );
      r.chips.dataset.count = String(shown.length);
      // A prompt axis from a {a, b} prompt lands in a free slot: say where it came from.
      const auto = axis && !r.select.value ? `${axis.name} (from the prompt): ${shown.length} values` : "";
      const bad = errorSlot === slot;
      r.hint.textContent = bad ? error : auto;
      r.hint.dataset.kind = bad ? "error" : "note";
      r.box.setAttribute("aria-invalid", String(bad));
    }
  }

  /** What the batch's prompt list was read as (the preview's `batch`), or nothing. */
  showBatch(preview: Preview | null, error: string): void {
    const b = preview?.batch;
    const labels = preview?.axes.find((a) => a.slot === "y")?.labels ?? [];
    this.batchNote.dataset.kind = error ? "error" : "note";
    this.batchNote.textContent = error
      ? error
      : b
        ? `${b.rows} prompt${b.rows === 1 ? "" : "s"}${b.columns.length ? ` · columns: ${b.columns.join(", ")}` : ""}`
        : "";
    this.batchChips.replaceChildren(
      ...(b ? labels.slice(0, 40) : []).map((label) => h("span", { cls: "schip", title: label }, label)),
      ...(b && labels.length > 40 ? [h("span", { cls: "muted" }, `+${labels.length - 40} more`)] : []),
    );
  }

  /** Show a whole form (a contact sheet's sweep): axes, seed mode and presets. */
  set(form: Form): void {
    this.mode.value = "grid";
    this.batchRow.hidden = true;
    for (const slot of SLOTS) {
      const r = this.rows[slot];
      const axis = form[slot];
      r.row.hidden = false;
      r.select.value = axis?.axis ?? "";
      r.box.value = axis?.values ?? "";
      r.box.disabled = !axis;
      r.box.rows = axis?.values.includes("\n") ? 3 : 1;
    }
    this.seed.value = form.seed;
    this.presets = [...form.presets];
    this.showPresets();
  }

  /** Put a sweep's axes back into the form (a view made after it started). */
  fill(axes: AxisInfo[]): void {
    for (const axis of axes) {
      const r = this.rows[axis.slot];
      if (axis.spec === null || ![...r.select.options].some((o) => o.value === axis.name)) continue;
      r.select.value = axis.name;
      r.box.disabled = false;
      r.box.value = axis.spec;
    }
  }
}
