/**
 * One control per schema field, built from what Python sends (no range, enum, default or
 * label is written here). Every field shows its description at all times, beside its label:
 * nothing appears or disappears when focus moves, so controls never jump under the pointer.
 */
import { type Field, isValid, key, type Value, wellFormed } from "../body";
import type { Ctx } from "../context";
import { type Attrs, btn, h, type Kid, listen } from "../dom";

export interface FieldView {
  el: HTMLElement;
  /** Show the model's value (called when the trait changes). */
  sync: () => void;
  /** Settle anything typed but not yet read (a prompt's suffix) before Generate. */
  settle?: () => Promise<void>;
}

const RATIO = /^(\d+):(\d+)$/;
/** Could the text carry a Midjourney suffix? Only a cheap filter: Python's parser decides. */
const SUFFIX = /(^|\s)(--|[\u2014\u2013])[A-Za-z]|::/;
/** A flag being typed ("a fox --"): not sent as prompt text before it is finished. */
const STARTING = /(^|\s)(--?|[\u2014\u2013])$/;
const int10 = (text: string): number => (/^-?\d+$/.test(text) ? Number(text) : Number.NaN);
/** A decimal number as typed ("2.5", "-1e3"); anything else is NaN. */
const real = (text: string): number => (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text) ? Number(text) : Number.NaN);

/** Controls from each field's rule: enum -> choice, bounded number -> slider, other numbers ->
 * a number box, boolean -> checkbox, text -> text box. niji 7's seed has its own control. */
export function fieldView(ctx: Ctx, f: Field): FieldView {
  if (f.type === "boolean") return checkbox(ctx, f);
  const options = f.enum;
  if (options) {
    const wide = options.length <= 4 || options.every((v) => RATIO.test(String(v)));
    return options.length > 1 && wide ? radios(ctx, f, options) : select(ctx, f, options);
  }
  if (f.type === "string") return text(ctx, f);
  if (f.name === "seed" && ctx.schema.builtin !== false) return seed(ctx, f);
  return slider(ctx, f, f.minimum !== null && f.maximum !== null);
}

/** The field's frame: label and description on one line, the controls, a hint line. */
function frame(ctx: Ctx, f: Field, label: HTMLElement, ...controls: Kid[]) {
  const hintId = ctx.id("hint");
  const descId = ctx.id("desc");
  const hint = h("small", { cls: "hint", id: hintId, "aria-live": "polite" });
  const el = h(
    "div",
    { cls: `field ${f.type}`, "data-field": f.name, title: f.description },
    h("div", { cls: "fhead" }, label, h("small", { cls: "desc", id: descId }, f.description)),
    ...controls,
    hint,
  );
  for (const input of el.querySelectorAll("input:not([data-role]), select, textarea, [role=radiogroup]")) {
    input.setAttribute("aria-describedby", `${descId} ${hintId}`);
  }
  /** Mark the typed value bad (a message) or good (null); Generate waits for every field. */
  const mark = (input: HTMLElement, message: string | null, note = ""): void => {
    input.setAttribute("aria-invalid", String(message !== null));
    hint.textContent = message ?? note;
    hint.dataset.kind = message === null ? "note" : "error";
    const had = ctx.invalid.get(f.name);
    if (message === null) ctx.invalid.delete(f.name);
    else ctx.invalid.set(f.name, message);
    if (had !== (message ?? undefined)) ctx.emit("validity");
  };
  return { el, hint, mark };
}

const bad = (f: Field): string => `${f.label} needs ${f.allowed}.`;
const labelFor = (f: Field, id: string): HTMLLabelElement => h("label", { cls: "label", for: id }, f.label);

/** A number box: typed text is checked with the schema before it reaches the model, and a
 * refused value stays on screen, marked, until it is fixed (never cut to an accepted prefix). */
function numberBox(
  ctx: Ctx,
  f: Field,
  attrs: Attrs,
  parse: (text: string) => number | null,
  mark: () => (input: HTMLElement, message: string | null) => void,
): HTMLInputElement {
  const int = f.type === "integer";
  const box = h("input", {
    type: "number",
    min: f.minimum,
    max: f.maximum,
    step: f.multiple_of ?? (int ? 1 : "any"),
    inputmode: int ? "numeric" : "decimal",
    ...attrs,
  });
  listen(box, "input", () => {
    const value = parse(box.value.trim());
    const ok = isValid(f, value);
    mark()(box, ok ? null : bad(f));
    if (ok && value !== ctx.get(key(f))) ctx.commit(key(f), value);
  });
  return box;
}

/** A slider with its number box (bounded numbers), or the number box alone. A field that may be
 * left unset (its box empty: not sent) shows the slider dimmed until a value is picked. */
function slider(ctx: Ctx, f: Field, ranged: boolean): FieldView {
  const id = ctx.id(f.name);
  const parse = f.type === "integer" ? int10 : real;
  const unset = f.allow_unset ? "not set" : null;
  const range = ranged
    ? h("input", {
        type: "range",
        id,
        min: f.minimum,
        max: f.maximum,
        step: f.multiple_of ?? (f.type === "integer" ? 1 : "any"),
      })
    : null;
  let mark!: ReturnType<typeof frame>["mark"];
  const box = numberBox(
    ctx,
    f,
    range ? { "aria-label": `${f.label} value`, placeholder: unset } : { id, placeholder: unset },
    (t) => (t === "" && unset ? null : parse(t)),
    () => mark,
  );
  const fr = frame(ctx, f, labelFor(f, id), h("div", { cls: "row" }, range, box));
  mark = fr.mark;
  if (range)
    listen(range, "input", () => {
      mark(box, null);
      ctx.commit(key(f), Number(range.value));
      box.value = range.value;
    });
  const sync = (): void => {
    const raw = ctx.get(key(f)) as number | null;
    const shown = raw === null ? "" : String(raw);
    if (range) range.value = raw === null ? String(f.minimum) : shown;
    if (range && unset) range.dataset.unset = String(raw === null);
    if (ctx.invalid.has(f.name) && document.activeElement === box) return; // being fixed
    const typed = box.value.trim();
    if ((typed === "" ? null : parse(typed)) !== raw || document.activeElement !== box) box.value = shown;
    mark(box, null);
  };
  return { el: fr.el, sync };
}

function seed(ctx: Ctx, f: Field): FieldView {
  const id = ctx.id(f.name);
  let mark!: ReturnType<typeof frame>["mark"];
  // An empty box means -1: a new seed for every run (drawn by Python, shown on each run).
  const box = numberBox(
    ctx,
    f,
    { id, placeholder: "random each run", cls: "seed" },
    (t) => (t === "" ? -1 : int10(t)),
    () => mark,
  );
  const pick = btn(
    { "data-role": "random-seed", title: "Pick a random seed now and keep it for every run" },
    "New seed",
  );
  const clear = btn({ "data-role": "clear-seed", title: "A new random seed for every run" }, "Random");
  listen(pick, "click", () => void ctx.send("random-seed"));
  listen(clear, "click", () => ctx.commit(f.name, -1));
  const fr = frame(ctx, f, labelFor(f, id), h("div", { cls: "row" }, box, pick, clear));
  mark = fr.mark;
  const sync = (): void => {
    const value = Number(ctx.get(f.name));
    const shown = value === -1 ? "" : String(value);
    if (ctx.invalid.has(f.name) && document.activeElement === box) return;
    if (box.value.trim() !== shown) box.value = shown;
    mark(box, null);
  };
  return { el: fr.el, sync };
}

/** Enum values (text or numbers) go into the DOM as text and back as what they were. */
function radios(ctx: Ctx, f: Field, options: Value[]): FieldView {
  const name = ctx.id(f.name); // a group name per view: two widgets never share a group
  const legendId = ctx.id("legend");
  const inputs: HTMLInputElement[] = [];
  const shapes = options.every((v) => RATIO.test(String(v)));
  const group = h("div", { cls: "options", role: "radiogroup", "aria-labelledby": legendId });
  for (const option of options) {
    const value = String(option);
    const input = h("input", { type: "radio", name, value });
    inputs.push(input);
    listen(input, "change", () => input.checked && ctx.commit(key(f), option));
    let shape: HTMLElement | null = null;
    if (shapes) {
      const [, w, ht] = RATIO.exec(value) as RegExpExecArray;
      const ratio = Number(w) / Number(ht);
      shape = h("span", { cls: "shape", "aria-hidden": "true" });
      shape.style.width = `${Math.round(18 * Math.min(1, ratio))}px`;
      shape.style.height = `${Math.round(18 * Math.min(1, 1 / ratio))}px`;
    }
    group.append(h("label", { cls: "opt", "data-value": value }, input, shape, value));
  }
  const fr = frame(ctx, f, h("span", { cls: "label", id: legendId }, f.label), group);
  const sync = (): void => {
    for (const input of inputs) input.checked = input.value === String(ctx.get(key(f)));
  };
  return { el: fr.el, sync };
}

/** A list of the enum's values; "" stands for "not set" where the field may be left unset. */
function select(ctx: Ctx, f: Field, options: Value[]): FieldView {
  const id = ctx.id(f.name);
  const all = f.allow_unset ? [null, ...options] : options;
  const sel = h(
    "select",
    { id },
    ...all.map((v) => h("option", { value: v ?? "" }, v === null ? "not set" : String(v))),
  );
  listen(sel, "change", () => ctx.commit(key(f), all[sel.selectedIndex]));
  const fr = frame(ctx, f, labelFor(f, id), sel);
  return {
    el: fr.el,
    sync: () => {
      sel.value = String(ctx.get(key(f)) ?? "");
    },
  };
}

function checkbox(ctx: Ctx, f: Field): FieldView {
  const id = ctx.id(f.name);
  const box = h("input", { type: "checkbox", id });
  listen(box, "change", () => ctx.commit(key(f), box.checked));
  const fr = frame(ctx, f, h("label", { cls: "check label", for: id }, box, f.label));
  return {
    el: fr.el,
    sync: () => {
      box.checked = Boolean(ctx.get(key(f)));
    },
  };
}

function text(ctx: Ctx, f: Field): FieldView {
  const id = ctx.id(f.name);
  const input = f.multiline
    ? h("textarea", { id, rows: f.required ? 3 : 2, spellcheck: "true" })
    : h("input", { id, type: "text" });
  const fr = frame(ctx, f, labelFor(f, id), input);
  // A pasted Midjourney prompt is read (niji 7), not sent verbatim.
  const reads = f.name === "prompt" && ctx.schema.suffix !== false;
  const tip = reads
    ? "Tip: paste a whole Midjourney prompt (a fox --ar 16:9 --s 250): its flags set the controls."
    : "";
  if (reads) fr.hint.classList.add("siray-reserve"); // two lines kept free: nothing moves
  fr.mark(input, null, tip);
  let held: string | null = null; // typed text with a suffix, read when the field is left
  let reading: Promise<void> | null = null;

  const read = (value: string): Promise<void> => {
    held = null;
    const done = ctx.send("read-prompt", { text: value }).then((reply) => {
      if (reply.ok) {
        if (input.value === value) input.value = String(reply.prompt ?? value);
        fr.mark(input, null, String(reply.applied || tip));
        if (reply.applied) ctx.announce(String(reply.applied));
      } else if (input.value === value) {
        fr.mark(input, `${reply.error ?? "The suffix could not be read."} Fix it to generate.`);
      }
      ctx.emit("request");
    });
    reading = done;
    void done.finally(() => {
      if (reading === done) reading = null;
    });
    return done;
  };

  listen<InputEvent>(input, "input", (e) => {
    const value = wellFormed(input.value);
    if (reads && SUFFIX.test(value)) {
      if (e.inputType?.startsWith("insertFrom")) {
        void read(value); // pasted or dropped: read it now
      } else {
        held = value;
        fr.mark(input, null, "Midjourney flags found: they are read when you leave the field.");
        ctx.emit("validity");
      }
      return;
    }
    if (reads && STARTING.test(value)) {
      held = value; // read (by Python) when the field is left, if nothing follows
      return;
    }
    held = null;
    const ok = isValid(f, value);
    fr.mark(input, ok ? null : bad(f), tip);
    if (ok) ctx.commit(key(f), value);
  });
  listen(input, "change", () => {
    if (held !== null) void read(held);
  });
  const sync = (): void => {
    const value = String(ctx.get(key(f)) ?? "");
    if (held !== null || reading || input.value === value) return;
    input.value = value; // set in Python, or by a suffix read in another view
    fr.mark(input, null, tip);
  };
  const settle = (): Promise<void> => (held !== null ? read(held) : (reading ?? Promise.resolve()));
  return { el: fr.el, sync, settle };
}
