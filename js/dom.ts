/**
 * Small DOM helpers shared by the panels. Text is always set with textContent or as text
 * nodes: no helper here parses a string as HTML.
 */

export type Attrs = Record<string, string | number | boolean | null | undefined>;
export type Kid = Node | string | null | undefined | false;

/**
 * Create an element; attribute values and text children are never parsed as HTML.
 * `cls: "row between"` sets the classes `siray-row siray-between` (every class is prefixed);
 * `$: "task-id"` sets `data-role` (the roles of docs/widget-contract.md: there are many, and
 * the bundle has a size budget).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...kids: Kid[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "cls") el.className = String(value).replace(/\S+/g, "siray-$&");
    else if (key === "$") el.dataset.role = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids) if (kid) el.append(kid);
  return el;
}

/** A `<button type="button">`. */
export const btn = (attrs: Attrs, ...kids: Kid[]): HTMLButtonElement =>
  h("button", { type: "button", ...attrs }, ...kids);

export function listen<E extends Event = Event>(target: EventTarget, type: string, cb: (e: E) => void): void {
  target.addEventListener(type, cb as EventListener);
}

/**
 * A label that switches between texts without changing size: every text sits in the same
 * grid cell and only one is visible, so a button never grows or shrinks ("Copy" -> "Copied").
 */
export function swapLabel(...texts: string[]): { el: HTMLSpanElement; show: (i: number) => void } {
  const spans = texts.map((t, i) => h("span", { "aria-hidden": i ? "true" : null }, t));
  const el = h("span", { cls: "swap" }, ...spans);
  const show = (i: number): void =>
    spans.forEach((s, j) => {
      s.style.visibility = i === j ? "" : "hidden";
      s.setAttribute("aria-hidden", String(i !== j));
    });
  show(0);
  return { el, show };
}

export const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
export const SHORTCUT = MAC ? "⌘↵" : "Ctrl+Enter";

export function elapsedText(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")} min`;
}

export async function writeClipboard(text: string): Promise<void> {
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

/** A copy button: copies what `source` gives; says "Copied ✓" (or why not) for a moment. */
export function copyButton(
  kind: string,
  label: string,
  source: () => string | Promise<string>,
  announce: (text: string) => void,
): HTMLButtonElement {
  const text = swapLabel(label, "Copied ✓", "Copy failed");
  const button = btn({ cls: "copy", "data-copy": kind, title: `Copy ${label}` }, text.el);
  let timer = 0;
  listen(button, "click", () => {
    Promise.resolve()
      .then(source)
      .then(writeClipboard)
      .then(
        () => {
          text.show(1);
          announce(`Copied ${label}`);
        },
        () => {
          text.show(2);
          announce("Copy failed: select the text and press Ctrl+C");
        },
      )
      .finally(() => {
        window.clearTimeout(timer);
        timer = window.setTimeout(() => text.show(0), 1200);
      });
  });
  return button;
}
