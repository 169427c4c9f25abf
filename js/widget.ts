/**
 * The ImagineWidget front end: `render` composes the panels of js/panels/ into one view.
 *
 * Rules every panel keeps: controls are derived from `schema.fields` (no range, enum, default
 * or label is written in JS); user and server text goes in with textContent, never innerHTML;
 * image URLs pass safeUrl(); ids and radio group names are made per view (ctx.id). The traits,
 * messages and DOM roles are documented in docs/widget-contract.md.
 */
import type { RenderProps } from "@anywidget/types";
import { GONE } from "./connection";
import { Ctx, type Model } from "./context";
import { btn, h, listen } from "./dom";
import { TABS } from "./panels/index";
import type { Panel, Tab } from "./panels/panel";
import "./widget.css";

/** The header: title, sandbox badge, where the key comes from, the workshop quota and this
 * session's spend (texts made by Python), and the lost-kernel banner. */
function header(ctx: Ctx): HTMLElement[] {
  const badge = h(
    "span",
    {
      cls: "badge",
      $: "sandbox-badge",
      title: "No API key: requests go to the offline sandbox and images are placeholders.",
    },
    "Sandbox",
  );
  const source = h("span", { cls: "muted", $: "key-source" });
  const quota = h("span", { cls: "quota", $: "quota", role: "status" });
  const session = h("span", { cls: "muted", $: "session" });
  const banner = h("div", { cls: "banner", $: "connection", role: "alert", hidden: true });
  const render = (): void => {
    const sandbox = Boolean(ctx.get("sandbox"));
    const from = String(ctx.get("key_source") ?? "");
    badge.hidden = !sandbox;
    source.textContent = sandbox
      ? "no key: offline sandbox"
      : from === "environment"
        ? "key from SIRAY_API_KEY"
        : from === "python"
          ? "key set in Python"
          : from === "widget"
            ? "key set here"
            : "no key: the API will refuse requests";
    const q = ctx.get("quota") ?? {};
    quota.textContent = q.text ?? "";
    quota.dataset.state = q.state ?? "";
    quota.hidden = !q.text;
    session.textContent = ctx.get("price")?.session ?? "";
    banner.hidden = !ctx.gone;
    banner.textContent = ctx.gone ? GONE : "";
    ctx.root.dataset.link = ctx.conn.link;
  };
  ctx.on("change:sandbox", render);
  ctx.on("change:key_source", render);
  ctx.on("change:quota", render);
  ctx.on("change:price", render);
  ctx.sub("link", render);
  render();
  return [
    h(
      "div",
      { cls: "head" },
      h("strong", { cls: "title" }, "Siray image generation"),
      badge,
      source,
      h("span", { cls: "meta" }, quota, session),
    ),
    banner,
  ];
}

/** Mount a lazily loaded tab's panels (js/panels/panel.ts), or say why they cannot be. */
async function load(ctx: Ctx, name: string, areas: Record<string, HTMLElement>): Promise<void> {
  const note = h("p", { cls: "muted", $: "loading" }, "Loading…");
  areas.wide.append(note);
  try {
    for (const panel of await ctx.load<Panel[]>(name)) areas[panel.area].append(panel.mount(ctx));
    note.remove();
  } catch (e) {
    note.textContent = (e as Error).message;
  }
}

/** The tab strip (shown once there are two tabs or more) and one tabpanel per tab. */
function tabs(ctx: Ctx, list: Tab[]): HTMLElement[] {
  const strip = h("div", { cls: "tabs", role: "tablist", "aria-label": "Views", hidden: list.length < 2 });
  const buttons: HTMLButtonElement[] = [];
  const loads: Array<() => Promise<void>> = [];
  const bodies = list.map((tab, i) => {
    const tabId = ctx.id(`tab-${tab.id}`);
    const bodyId = ctx.id(`tabpanel-${tab.id}`);
    const areas = { main: h("div", { cls: "main" }), side: h("div", { cls: "side" }), wide: h("div") };
    for (const panel of tab.panels) areas[panel.area].append(panel.mount(ctx));
    let loading: Promise<void> | undefined;
    loads.push(() => (loading ??= tab.load ? load(ctx, tab.load, areas) : Promise.resolve()));
    const button = btn({ role: "tab", id: tabId, "aria-controls": bodyId, "data-tab": tab.id }, tab.label);
    buttons.push(button);
    strip.append(button);
    listen(button, "click", () => void select(i));
    return h(
      "div",
      {
        role: list.length > 1 ? "tabpanel" : null,
        id: bodyId,
        "aria-labelledby": list.length > 1 ? tabId : null,
        "data-tab-body": tab.id,
      },
      h("div", { cls: "body" }, areas.main, areas.side),
      areas.wide,
    );
  });
  const select = (index: number, focus = false): Promise<void> => {
    buttons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === index));
      b.tabIndex = i === index ? 0 : -1;
      bodies[i].hidden = i !== index;
    });
    if (focus) buttons[index]?.focus();
    return loads[index]();
  };
  ctx.tab = (id) =>
    select(
      Math.max(
        0,
        list.findIndex((t) => t.id === id),
      ),
    );
  listen<KeyboardEvent>(strip, "keydown", (e) => {
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
    if (at < 0 || to === undefined) return;
    e.preventDefault();
    void select((to + buttons.length) % buttons.length, true);
  });
  void select(0);
  return [strip, ...bodies];
}

/** Build one view of `model` in `el` with the given tabs; returns its cleanup. */
export function mount(model: Model, el: HTMLElement, list: Tab[] = TABS): () => void {
  const root = h("div", { cls: "widget", "data-lm-suppress-shortcuts": "true" });
  const ctx = new Ctx(model, root);
  root.append(...header(ctx), ...tabs(ctx, list));
  listen<KeyboardEvent>(root, "keydown", (e) => {
    // Ctrl+Enter is Generate on the Generate tab only: another tab's keys never send a task
    // by surprise (the Sweep tab takes it for its own Run, which asks first).
    const tab = (e.target as HTMLElement).closest?.("[data-tab-body]")?.getAttribute("data-tab-body");
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && (!tab || tab === list[0]?.id)) {
      e.preventDefault();
      ctx.emit("generate");
    }
    // JupyterLab reads shortcuts from keydown bubbling to the document: on a focused slider
    // or button, "a" would insert a cell, "d d" delete one, arrows move the selection and
    // Ctrl+Enter run the cell. Keys typed here are for the widget; Escape and Save still
    // reach JupyterLab.
    const save = (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s";
    if (e.key !== "Escape" && !save) e.stopPropagation();
  });
  // An image file dropped anywhere on the view: a contact sheet opens its sweep in the Sweep
  // tab; any other image goes to the History tab, which reads its parameters (or says why not).
  for (const type of ["dragover", "drop"]) {
    listen<DragEvent>(root, type, (e) => {
      const file = e.dataTransfer?.files[0];
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      e.stopPropagation();
      if (file && type === "drop") void open(file);
    });
  }
  const open = async (file: File): Promise<void> => {
    let error = "";
    if (/png$/i.test(file.type + file.name)) {
      const r = await ctx.send("sweep-sheet", { name: file.name }, [await file.arrayBuffer()]);
      if (r.sheet) return ctx.tab("sweep").then(() => ctx.emit("sheet", r));
      error = r.ok ? "" : (r.error ?? "");
    }
    await ctx.tab("history");
    ctx.emit("import", file, error);
  };
  el.append(root);
  // Is a kernel answering for this widget? (A notebook reopened from saved state has none.)
  void ctx.send("hello");
  return () => {
    ctx.dispose();
    root.remove();
  };
}

function render({ model, el }: RenderProps<Record<string, unknown>>): () => void {
  return mount(model as Model, el);
}

export default { render };
