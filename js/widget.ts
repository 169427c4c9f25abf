/**
 * The ImagineWidget front end: plain DOM, built from the schema Python sends.
 *
 * Rules: every control is derived from `schema.fields` (no range, enum, default or label is
 * written here); all user and server text goes in with textContent, never innerHTML; image
 * URLs pass safeUrl(), and loopback ones (the sandbox's) are shown from bytes the kernel sends
 * (a browser on another machine cannot load them); the request preview is recomputed
 * synchronously in the input handler (same frame) and is byte-equal to Python's `request_json`.
 * The DOM contract (data-field, data-role, data-copy) and the messages are documented at the
 * top of siray_widgets/widget.py.
 */
import type { AnyModel, RenderProps } from "@anywidget/types";
import { bodyText, type Field, IMAGE_TYPE, isLocalUrl, isValid, safeUrl, wellFormed } from "./body";
import "./widget.css";

interface Schema {
  fields: Field[];
  task_statuses: string[];
}

interface Run {
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
}

// biome-ignore lint/suspicious/noExplicitAny: trait values are plain JSON of several types
type Model = AnyModel<Record<string, any>>;
type Attrs = Record<string, string | number | boolean | null | undefined>;
type Kid = Node | string | null | undefined;

const ACTIVE = new Set(["starting", "running"]);
const TERMINAL = new Set(["SUCCESS", "FAILURE"]);
const RATIO = /^(\d+):(\d+)$/;
const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
let counter = 0;

/** Create an element; attribute values and text children are never parsed as HTML. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...kids: Kid[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

const uid = (stem: string): string => `siray-${stem}-${++counter}`;

function elapsedText(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, "0")} min`;
}

async function writeClipboard(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    // Not a secure context, or no permission: the old way still works in most browsers.
  }
  const area = h("textarea", { "aria-hidden": "true" });
  area.style.cssText = "position:fixed;top:0;left:0;width:1px;height:1px;opacity:0";
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

function render({ model, el }: RenderProps<Record<string, unknown>>): () => void {
  const m = model as Model;
  const schema = m.get("schema") as Schema;
  const fields = schema.fields;
  const cleanups: Array<() => void> = [];
  const syncs = new Map<string, () => void>();
  const invalid = new Set<string>();
  let pendingId: string | null = null;
  let pendingTimer = 0;
  let selected: string | null = null; // run id; null follows the newest run
  let shownImages = "";
  let timer = 0;
  // Output URL -> [blob: URL made here from the kernel's bytes, type]; revoked when the run
  // is pruned or the view removed. Never state: nothing of it is saved in the notebook.
  const blobs = new Map<string, [string, string]>();
  const direct = new Set<string>(); // loopback URLs the kernel could not send: try them as is
  const asked = new Map<string, string[]>(); // fetch-images id -> URLs asked for

  const on = (event: string, cb: (...args: unknown[]) => void): void => {
    m.on(event, cb);
    cleanups.push(() => m.off(event, cb));
  };
  const listen = <E extends Event>(
    target: EventTarget,
    type: string,
    cb: (e: E) => void,
  ): void => {
    target.addEventListener(type, cb as EventListener);
  };
  const commit = (name: string, value: unknown): void => {
    m.set(name, value);
    m.save_changes();
    preview(); // same frame as the input event
  };
  const newId = (): string => `${Date.now().toString(36)}-${++counter}`;

  // ---------------------------------------------------------------- layout

  const root = h("div", { class: "siray-widget", "data-lm-suppress-shortcuts": "true" });
  const live = h("span", { class: "siray-offscreen", "aria-live": "polite" });
  const badge = h(
    "span",
    {
      class: "siray-badge",
      "data-role": "sandbox-badge",
      title: "No API key: requests go to the offline sandbox and images are placeholders.",
    },
    "Sandbox",
  );
  const keySource = h("span", { class: "siray-muted", "data-role": "key-source" });
  const controls = h("div", { class: "siray-controls" });
  const side = h("div", { class: "siray-side" });
  const gallery = h("div", { class: "siray-images", "data-role": "images" });
  root.append(
    h(
      "div",
      { class: "siray-head" },
      h("strong", { class: "siray-title" }, "Siray image generation"),
      badge,
      keySource,
      live,
    ),
    h("div", { class: "siray-body" }, controls, side),
    gallery,
  );
  el.append(root);

  const announce = (text: string): void => {
    live.textContent = text;
  };

  // ---------------------------------------------------------------- field controls

  function wrapper(f: Field, ...kids: Kid[]): HTMLDivElement {
    const hintId = uid("hint");
    const descId = uid("desc");
    const div = h(
      "div",
      { class: `siray-field siray-${f.type}`, "data-field": f.name, title: f.description },
      ...kids,
      h("small", { class: "siray-hint", id: hintId, "aria-live": "polite" }),
      // The description, for screen readers and (shown on keyboard focus) keyboard users:
      // the title tooltip needs a mouse.
      h("small", { class: "siray-desc", id: descId }, f.description),
    );
    for (const input of div.querySelectorAll("input:not([data-role]), select, textarea, [role=radiogroup]")) {
      input.setAttribute("aria-describedby", `${descId} ${hintId}`);
    }
    return div;
  }

  function markInvalid(f: Field, wrap: HTMLElement, input: HTMLElement, bad: boolean): void {
    input.setAttribute("aria-invalid", String(bad));
    const hint = wrap.querySelector(".siray-hint");
    if (hint) hint.textContent = bad ? `${f.label} needs ${f.allowed}.` : "";
    if (bad) invalid.add(f.name);
    else invalid.delete(f.name);
    updateButtons();
  }

  function labelFor(f: Field, id: string): HTMLLabelElement {
    return h("label", { class: "siray-label", for: id }, f.label);
  }

  /** Integer boxes: typed text is checked with the schema before it reaches the model. */
  function numberBox(
    f: Field,
    wrap: () => HTMLElement,
    attrs: Attrs,
    parse: (text: string) => number,
  ): HTMLInputElement {
    const box = h("input", {
      type: "number",
      min: f.minimum,
      max: f.maximum,
      step: 1,
      inputmode: "numeric",
      ...attrs,
    });
    listen(box, "input", () => {
      const value = parse(box.value.trim());
      const ok = isValid(f, value);
      markInvalid(f, wrap(), box, !ok);
      if (ok && value !== m.get(f.name)) commit(f.name, value);
    });
    // Leaving a box shows the model's value: the accepted one, written the usual way
    // (-1 as an empty "random" box), even if what was typed last was refused.
    listen(box, "change", () => {
      markInvalid(f, wrap(), box, false);
      syncs.get(f.name)?.();
    });
    return box;
  }

  const parseInt10 = (text: string): number => (/^-?\d+$/.test(text) ? Number(text) : Number.NaN);

  function slider(f: Field): HTMLElement {
    const id = uid(f.name);
    const range = h("input", { type: "range", id, min: f.minimum, max: f.maximum, step: 1 });
    let wrap!: HTMLElement;
    const box = numberBox(f, () => wrap, { "aria-label": `${f.label} value` }, parseInt10);
    listen(range, "input", () => {
      markInvalid(f, wrap, box, false);
      commit(f.name, Number(range.value));
    });
    wrap = wrapper(f, labelFor(f, id), h("div", { class: "siray-row" }, range, box));
    syncs.set(f.name, () => {
      const value = Number(m.get(f.name));
      range.value = String(value);
      if (document.activeElement !== box || parseInt10(box.value) !== value) {
        box.value = String(value);
      }
    });
    return wrap;
  }

  function seedControl(f: Field): HTMLElement {
    const id = uid(f.name);
    let wrap!: HTMLElement;
    // An empty box means -1, "random": the API picks the seed.
    const box = numberBox(f, () => wrap, { id, placeholder: "random", class: "siray-seed" }, (text) =>
      text === "" ? -1 : parseInt10(text),
    );
    const dice = h(
      "button",
      { type: "button", "data-role": "random-seed", title: "Pick a random seed now, so it can be reused" },
      "Random",
    );
    const lock = h("input", { type: "checkbox", "data-role": "seed-lock" });
    listen(dice, "click", () => m.send({ kind: "random-seed", id: newId() }));
    listen(lock, "change", () => commit("seed_locked", lock.checked));
    wrap = wrapper(
      f,
      labelFor(f, id),
      h(
        "div",
        { class: "siray-row" },
        box,
        dice,
        h(
          "label",
          {
            class: "siray-check",
            title: "Locked: keep this seed for every run. Unlocked: a seed is used once.",
          },
          lock,
          "Lock",
        ),
      ),
    );
    const sync = (): void => {
      const value = Number(m.get(f.name));
      const shown = value === -1 ? "" : String(value);
      if (document.activeElement !== box || box.value.trim() !== shown) box.value = shown;
      lock.checked = Boolean(m.get("seed_locked"));
    };
    syncs.set(f.name, sync);
    syncs.set("seed_locked", sync);
    return wrap;
  }

  function radios(f: Field, options: string[]): HTMLElement {
    const name = uid(f.name);
    const inputs: HTMLInputElement[] = [];
    const shapes = options.every((v) => RATIO.test(v));
    const group = h("div", { class: "siray-options", role: "radiogroup" });
    for (const value of options) {
      const input = h("input", { type: "radio", name, value });
      inputs.push(input);
      listen(input, "change", () => input.checked && commit(f.name, value));
      let shape: HTMLElement | null = null;
      if (shapes) {
        const [, w, ht] = RATIO.exec(value) as RegExpExecArray;
        const ratio = Number(w) / Number(ht);
        shape = h("span", { class: "siray-shape", "aria-hidden": "true" });
        shape.style.width = `${Math.round(18 * Math.min(1, ratio))}px`;
        shape.style.height = `${Math.round(18 * Math.min(1, 1 / ratio))}px`;
      }
      group.append(h("label", { class: "siray-opt", "data-value": value }, input, shape, value));
    }
    const legendId = uid("legend");
    group.setAttribute("aria-labelledby", legendId);
    syncs.set(f.name, () => {
      for (const input of inputs) input.checked = input.value === m.get(f.name);
    });
    return wrapper(f, h("span", { class: "siray-label", id: legendId }, f.label), group);
  }

  function select(f: Field, options: string[]): HTMLElement {
    const id = uid(f.name);
    const sel = h("select", { id }, ...options.map((v) => h("option", { value: v }, v)));
    listen(sel, "change", () => commit(f.name, sel.value));
    syncs.set(f.name, () => {
      sel.value = String(m.get(f.name));
    });
    return wrapper(f, labelFor(f, id), sel);
  }

  function checkbox(f: Field): HTMLElement {
    const box = h("input", { type: "checkbox" });
    listen(box, "change", () => commit(f.name, box.checked));
    syncs.set(f.name, () => {
      box.checked = Boolean(m.get(f.name));
    });
    return wrapper(f, h("label", { class: "siray-check" }, box, f.label));
  }

  function text(f: Field): HTMLElement {
    const id = uid(f.name);
    const input = f.multiline
      ? h("textarea", { id, rows: f.required ? 3 : 2, spellcheck: "true" })
      : h("input", { id, type: "text" });
    let wrap!: HTMLElement;
    listen(input, "input", () => {
      const value = wellFormed(input.value);
      const ok = isValid(f, value);
      markInvalid(f, wrap, input, !ok);
      if (ok) commit(f.name, value);
    });
    wrap = wrapper(f, labelFor(f, id), input);
    syncs.set(f.name, () => {
      const value = String(m.get(f.name));
      if (input.value !== value) {
        input.value = value;
        markInvalid(f, wrap, input, false);
      }
    });
    return wrap;
  }

  for (const f of fields) {
    let control: HTMLElement;
    if (f.type === "boolean") control = checkbox(f);
    else if (f.type === "integer" && f.name === "seed") control = seedControl(f);
    else if (f.type === "integer") control = slider(f);
    // Ratios get a picker that draws each shape; a few choices get radio tiles; a single
    // choice (the model) or a long list gets a select.
    else if (f.enum && f.enum.length > 1 && (f.enum.length <= 4 || f.enum.every((v) => RATIO.test(v))))
      control = radios(f, f.enum);
    else if (f.enum) control = select(f, f.enum);
    else control = text(f);
    controls.append(control);
  }

  // ---------------------------------------------------------------- key and generate

  const keyInput = h("input", {
    type: "password",
    "data-role": "api-key",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "paste a key (optional)",
    "aria-label": "API key",
  });
  const keyUse = h("button", { type: "button", "data-role": "set-key" }, "Use key");
  const keyForget = h("button", { type: "button", "data-role": "forget-key" }, "Forget");
  const sendKey = (key: string): void => {
    // The key travels once, as a message, and lives in Python only: never in a trait.
    m.send({ kind: "set-key", id: newId(), key });
    keyInput.value = "";
  };
  listen(keyUse, "click", () => keyInput.value.trim() && sendKey(keyInput.value.trim()));
  listen(keyForget, "click", () => sendKey(""));
  listen<KeyboardEvent>(keyInput, "keydown", (e) => {
    if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      keyUse.click();
    }
  });
  controls.append(
    h(
      "details",
      { class: "siray-key", title: "Optional: a key from the Siray dashboard." },
      h("summary", {}, "API key"),
      h("div", { class: "siray-row" }, keyInput, keyUse, keyForget),
    ),
  );

  const generateLabel = h("span", {}, "Generate");
  const generateButton = h(
    "button",
    { type: "button", class: "siray-primary", "data-role": "generate" },
    generateLabel,
    h("kbd", {}, MAC ? "⌘↵" : "Ctrl+Enter"),
  );
  const waiting = h("span", { class: "siray-muted", "data-role": "pending", hidden: true });
  controls.append(h("div", { class: "siray-actions" }, generateButton, waiting));

  function generate(): void {
    if (generateButton.disabled) return;
    // A key typed but not yet applied is surely meant for this run (messages keep order).
    if (keyInput.value.trim()) sendKey(keyInput.value.trim());
    pendingId = newId();
    m.send({ kind: "generate", id: pendingId, body: jsonPre.textContent });
    window.clearTimeout(pendingTimer);
    // A kernel running a long cell answers when the cell ends (sooner with a subshell for
    // widget messages): the request stays pending, and restarting would lose the work.
    pendingTimer = window.setTimeout(() => {
      waiting.textContent = "The kernel is busy (is a cell still running?): this Generate starts when it is free.";
      waiting.hidden = false;
      announce(waiting.textContent);
    }, 15000);
    selected = null;
    updateButtons();
  }
  listen(generateButton, "click", generate);
  listen<KeyboardEvent>(root, "keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    }
    // JupyterLab reads shortcuts from keydown bubbling to the document: on a focused slider
    // or button, "a" would insert a cell, "d d" delete one, arrows move the selection and
    // Ctrl+Enter run the cell. Keys typed here are for the widget; Escape and Save still
    // reach JupyterLab.
    const save = (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s";
    if (e.key !== "Escape" && !save) e.stopPropagation();
  });

  // ---------------------------------------------------------------- request panel

  const copyButton = (kind: string, label: string): HTMLButtonElement =>
    h("button", { type: "button", class: "siray-copy", "data-copy": kind, title: `Copy ${label}` }, label);
  const jsonPre = h("pre", { class: "siray-json", "data-role": "request-json", tabindex: 0 });
  const suffixLine = h("code", { "data-role": "suffix" });
  side.append(
    h(
      "section",
      { class: "siray-panel", "aria-label": "Request" },
      h(
        "div",
        { class: "siray-row siray-between" },
        h("span", { class: "siray-label" }, "Request body"),
        h(
          "span",
          { class: "siray-row", role: "group", "aria-label": "Copy" },
          copyButton("json", "JSON"),
          copyButton("curl", "curl"),
          copyButton("python", "Python"),
          copyButton("suffix", "Suffix"),
        ),
      ),
      jsonPre,
      h(
        "div",
        { class: "siray-suffix", title: "The same parameters as a Midjourney prompt suffix" },
        h("span", { class: "siray-muted" }, "Midjourney suffix: "),
        suffixLine,
      ),
    ),
  );

  function preview(): void {
    const body = bodyText(fields, (name) => m.get(name));
    if (jsonPre.textContent !== body) jsonPre.textContent = body;
  }

  /** Snippets are made by Python from request_json; wait (briefly) until they match the preview. */
  function snippet(kind: string): Promise<string> {
    const fresh = (): string | null => {
      const s = m.get("snippets") as Record<string, string> | undefined;
      return s && s.json === jsonPre.textContent ? (s[kind] ?? "") : null;
    };
    const now = fresh();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (): void => {
        const value = fresh();
        if (value === null) return;
        window.clearTimeout(timeout);
        m.off("change:snippets", done);
        resolve(value);
      };
      const timeout = window.setTimeout(() => {
        m.off("change:snippets", done);
        resolve((m.get("snippets") as Record<string, string> | undefined)?.[kind] ?? "");
      }, 2000);
      m.on("change:snippets", done);
    });
  }

  listen<MouseEvent>(root, "click", (e) => {
    const button = (e.target as Element).closest<HTMLButtonElement>("button[data-copy]");
    if (!button || !root.contains(button)) return;
    const kind = button.dataset.copy ?? "";
    // Kept once: a second click within 1.2 s would otherwise keep "Copied ✓" as the label.
    const label = (button.dataset.label ??= button.textContent ?? "");
    const source =
      kind === "json"
        ? Promise.resolve(jsonPre.textContent ?? "")
        : kind === "task-id"
          ? Promise.resolve(taskIdCode.textContent ?? "")
          : snippet(kind);
    source
      .then((value) => writeClipboard(value))
      .then(
        () => {
          button.textContent = "Copied ✓";
          announce(`Copied ${kind}`);
        },
        () => {
          button.textContent = "Copy failed";
          announce("Copy failed: select the text and press Ctrl+C");
        },
      )
      .finally(() => window.setTimeout(() => (button.textContent = label), 1200));
  });

  // ---------------------------------------------------------------- task panel

  const taskIdCode = h("code", { class: "siray-taskid", "data-role": "task-id" });
  const copyTaskId = copyButton("task-id", "Copy id");
  const statusText = h("span", { class: "siray-status", "data-role": "status", "aria-live": "polite" });
  const elapsed = h("span", { class: "siray-muted", "data-role": "elapsed" });
  const cancelButton = h("button", { type: "button", "data-role": "cancel" }, "Cancel");
  const timeline = h("ol", { class: "siray-timeline", "data-role": "timeline" });
  const bar = h("progress", {
    max: 100,
    value: 0,
    "data-role": "progress",
    "aria-label": "Progress",
    "aria-valuemin": 0,
    "aria-valuemax": 100,
    "aria-valuenow": 0,
  });
  const percent = h("span", { class: "siray-muted", "data-role": "percent" }, "0%");
  const errorBox = h("div", { class: "siray-error", "data-role": "error", role: "alert" });
  const noteBox = h("div", { class: "siray-muted", "data-role": "note" });
  const chips = h("div", { class: "siray-chips", "data-role": "tasks", "aria-label": "Runs" });
  const steps = new Map<string, HTMLLIElement>();
  for (const status of schema.task_statuses) {
    const li = h("li", { "data-step": status }, status.replace(/_/g, " ").toLowerCase());
    steps.set(status, li);
    timeline.append(li);
  }
  side.append(
    h(
      "section",
      { class: "siray-panel", "aria-label": "Task" },
      h(
        "div",
        { class: "siray-row siray-between" },
        h(
          "span",
          { class: "siray-row" },
          h("span", { class: "siray-label" }, "Task"),
          taskIdCode,
          copyTaskId,
        ),
        h("span", { class: "siray-row" }, statusText, elapsed, cancelButton),
      ),
      timeline,
      h("div", { class: "siray-row" }, bar, percent),
      errorBox,
      noteBox,
      chips,
    ),
  );
  listen(cancelButton, "click", () => {
    const run = shownRun();
    if (!run) return;
    m.send({ kind: "cancel", id: newId(), run: run.id });
    cancelButton.disabled = true;
    cancelButton.textContent = "Cancelling…";
  });

  const runs = (): Run[] => (m.get("tasks") as Run[] | undefined) ?? [];
  function shownRun(): Run | undefined {
    const all = runs();
    return (selected ? all.find((r) => r.id === selected) : undefined) ?? all[all.length - 1];
  }

  function updateButtons(): void {
    const all = runs();
    const starting = all.some((r) => r.state === "starting");
    const busy = pendingId !== null || starting;
    generateButton.disabled = busy || invalid.size > 0;
    generateButton.setAttribute("aria-busy", String(busy));
    generateLabel.textContent = busy ? "Starting…" : "Generate";
    generateButton.title = invalid.size ? "Fix the values marked in red first" : "";
    const run = shownRun();
    const active = Boolean(run && ACTIVE.has(run.state));
    if (!active) cancelButton.textContent = "Cancel";
    cancelButton.disabled = !active || cancelButton.textContent !== "Cancel";
  }

  function tick(): void {
    const run = shownRun();
    elapsed.textContent = run ? elapsedText((run.finished_at ?? Date.now()) - run.started_at) : "";
    const running = runs().some((r) => ACTIVE.has(r.state));
    if (running && !timer) timer = window.setInterval(tick, 200);
    if (!running && timer) {
      window.clearInterval(timer);
      timer = 0;
    }
  }

  function renderTask(): void {
    const all = runs();
    const run = shownRun();
    const latest = all[all.length - 1];
    taskIdCode.textContent = run?.task_id ?? "";
    copyTaskId.hidden = !run?.task_id;
    const word = !run
      ? ""
      : run.state === "cancelled" || run.state === "error" || !run.status
        ? run.state
        : run.status;
    statusText.textContent = word;
    statusText.dataset.status = word;
    statusText.dataset.state = run?.state ?? "";

    const order = schema.task_statuses.filter((s) => !TERMINAL.has(s));
    const at = run ? order.indexOf(run.status) : -1;
    const ended = run ? TERMINAL.has(run.status) : false;
    for (const [status, li] of steps) {
      const index = order.indexOf(status);
      let state = "todo";
      if (index >= 0) state = ended || index < at ? "done" : index === at ? "current" : "todo";
      else if (run?.status === status) state = "current";
      li.dataset.state = state;
      // Only the terminal step that happened is shown; before the end, success is the goal.
      li.hidden = TERMINAL.has(status) && (ended ? run?.status !== status : status !== "SUCCESS");
      if (state === "current") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    }

    const value = run ? Math.max(0, Math.min(100, run.progress)) : 0;
    bar.value = value;
    bar.setAttribute("aria-valuenow", String(value));
    percent.textContent = `${value}%`;

    const error = run === latest ? String(m.get("error") ?? "") : (run?.error ?? "");
    errorBox.textContent = error;
    errorBox.hidden = !error;
    noteBox.textContent = run?.note ?? "";
    noteBox.hidden = !run?.note;
    if (!run && !error) {
      noteBox.textContent = `No task yet: press Generate (${MAC ? "⌘↵" : "Ctrl+Enter"}).`;
      noteBox.hidden = false;
    }

    const focused = (document.activeElement as HTMLElement | null)?.dataset?.run;
    chips.replaceChildren();
    if (all.length > 1) {
      all.forEach((r, i) => {
        const chip = h(
          "button",
          {
            type: "button",
            class: "siray-chip",
            "data-run": r.id,
            "data-state": r.state,
            "aria-pressed": String(r === run),
            title: r.task_id || r.state,
          },
          `#${i + 1} ${r.status || r.state}`,
        );
        listen(chip, "click", () => {
          selected = r === latest ? null : r.id;
          renderTask();
        });
        chips.append(chip);
        if (focused === r.id) chip.focus();
      });
    }
    renderImages(run);
    updateButtons();
    tick();
  }

  // ---------------------------------------------------------------- images

  const viewerImg = h("img", { alt: "" });
  const viewerLink = h("a", { download: "", target: "_blank", rel: "noopener noreferrer" }, "Download");
  const viewerClose = h("button", { type: "button", "aria-label": "Close" }, "Close");
  const viewer = h(
    "dialog",
    { class: "siray-viewer", "data-role": "viewer", "aria-label": "Image" },
    viewerImg,
    h("div", { class: "siray-row siray-between" }, viewerLink, viewerClose),
  );
  root.append(viewer);
  let viewerUrls: string[] = [];
  let viewerIndex = 0;
  const showImage = (index: number): void => {
    viewerIndex = (index + viewerUrls.length) % viewerUrls.length;
    const url = viewerUrls[viewerIndex] ?? "";
    viewerImg.src = url;
    viewerImg.alt = `Image ${viewerIndex + 1} of ${viewerUrls.length}`;
    viewerLink.href = url;
  };
  listen(viewerClose, "click", () => viewer.close());
  listen<MouseEvent>(viewer, "click", (e) => e.target === viewer && viewer.close());
  listen<KeyboardEvent>(viewer, "keydown", (e) => {
    if (e.key === "ArrowRight") showImage(viewerIndex + 1);
    else if (e.key === "ArrowLeft") showImage(viewerIndex - 1);
  });

  /** [output URL, what to show ("" while the kernel's bytes are on their way), type]. */
  function sources(run: Run | undefined): Array<[string, string, string]> {
    const shown: Array<[string, string, string]> = [];
    for (const url of run?.outputs ?? []) {
      const safe = safeUrl(url);
      const blob = blobs.get(url);
      if (blob) shown.push([url, ...blob]);
      else if (safe !== null) shown.push([url, isLocalUrl(safe) && !direct.has(url) ? "" : safe, ""]);
    }
    return shown;
  }

  function renderImages(run: Run | undefined): void {
    const shown = sources(run);
    const key = shown.map((s) => s.join(" ")).join("\n");
    if (key === shownImages) return;
    shownImages = key;
    viewerUrls = shown.map((s) => s[1]);
    gallery.replaceChildren(
      ...shown.map(([url, src, type], i) => {
        const label = `Image ${i + 1} of ${shown.length}`;
        const thumb = h(
          "button",
          { type: "button", class: "siray-thumb", title: `${label}: click to enlarge`, disabled: !src },
          src
            ? h("img", { src, alt: label, loading: "lazy", decoding: "async" })
            : h("span", { class: "siray-wait" }, `${label}: loading…`),
        );
        listen(thumb, "click", () => {
          showImage(i);
          viewer.showModal();
        });
        const name = `siray-${i + 1}${type ? `.${type.slice(6).replace("jpeg", "jpg")}` : ""}`;
        return h(
          "figure",
          { class: "siray-figure", "data-url": url },
          thumb,
          h(
            "figcaption",
            {},
            src && h("a", { href: src, download: name, target: "_blank", rel: "noopener noreferrer" }, "Download"),
          ),
        );
      }),
    );
    gallery.hidden = shown.length === 0;
  }

  /** The kernel's `image-data` message: one buffer per URL in `urls`. */
  function receiveImages(msg: { urls?: string[]; types?: string[]; failed?: string[] }, buffers: DataView<ArrayBuffer>[]): void {
    (msg.urls ?? []).forEach((url, i) => {
      const type = msg.types?.[i] ?? "";
      const data = buffers[i];
      if (data && !blobs.has(url) && IMAGE_TYPE.test(type)) {
        blobs.set(url, [URL.createObjectURL(new Blob([data], { type })), type]);
      }
    });
    for (const url of msg.failed ?? []) direct.add(url);
    renderImages(shownRun());
  }

  /** Revoke the blobs of runs no longer listed (or of every run: `keep` empty). */
  function dropBlobs(keep: Set<string>): void {
    for (const [url, [src]] of blobs) {
      if (!keep.has(url)) {
        URL.revokeObjectURL(src);
        blobs.delete(url);
      }
    }
  }

  // ---------------------------------------------------------------- header

  function renderHead(): void {
    const sandbox = Boolean(m.get("sandbox"));
    badge.hidden = !sandbox;
    const source = String(m.get("key_source") ?? "");
    keySource.textContent = sandbox
      ? "no key: offline sandbox"
      : source === "environment"
        ? "key from SIRAY_API_KEY"
        : source === "python"
          ? "key set in Python"
          : source === "widget"
            ? "key set here"
            : "no key: the API will refuse requests";
    keyForget.disabled = source !== "widget";
  }

  // ---------------------------------------------------------------- wiring

  for (const name of syncs.keys()) {
    on(`change:${name}`, () => {
      syncs.get(name)?.();
      preview();
    });
  }
  on("change:snippets", () => {
    const s = m.get("snippets") as Record<string, string> | undefined;
    suffixLine.textContent = s?.suffix ?? "";
  });
  on("change:tasks", () => {
    dropBlobs(new Set(runs().flatMap((r) => r.outputs)));
    renderTask();
  });
  on("change:error", renderTask);
  on("change:sandbox", renderHead);
  on("change:key_source", renderHead);
  on("msg:custom", (msg: unknown, buffers: unknown) => {
    const reply = msg as { kind?: string; id?: string; ok?: boolean; error?: string; urls?: string[] };
    if (reply.kind === "image-data") {
      receiveImages(reply, (buffers as DataView<ArrayBuffer>[] | undefined) ?? []);
    } else if (reply.kind === "generate-response" && reply.id === pendingId) {
      pendingId = null;
      window.clearTimeout(pendingTimer);
      waiting.hidden = true;
      updateButtons();
    } else if (reply.kind === "set-key-response" && reply.ok) {
      announce("Key updated");
    } else if (reply.kind === "fetch-images-response" && reply.id) {
      // URLs the kernel will not send (it lost track of them): let the browser try.
      for (const url of asked.get(reply.id) ?? []) if (!reply.urls?.includes(url)) direct.add(url);
      asked.delete(reply.id);
      renderImages(shownRun());
    }
  });

  for (const sync of syncs.values()) sync();
  preview();
  suffixLine.textContent = (m.get("snippets") as Record<string, string> | undefined)?.suffix ?? "";
  renderHead();
  renderTask();
  // Image bytes are messages, not state: a view made after the runs (a reloaded page, a
  // second view) asks for those of the runs it lists.
  const missing = [...new Set(runs().flatMap((r) => r.outputs))].filter(isLocalUrl);
  if (missing.length) {
    const id = newId();
    asked.set(id, missing);
    m.send({ kind: "fetch-images", id, urls: missing });
  }

  return () => {
    for (const cleanup of cleanups) cleanup();
    window.clearInterval(timer);
    window.clearTimeout(pendingTimer);
    dropBlobs(new Set());
  };
}

export default { render };
