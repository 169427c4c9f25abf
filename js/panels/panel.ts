/**
 * The panel interface. A panel owns one DOM subtree: it builds it in `mount`, reads the
 * model, and talks to Python only through the documented messages (ctx.send) and the traits
 * it may write (ctx.commit). Panels talk to each other only through ctx's topics.
 *
 * Panels are grouped in tabs; `render` (js/widget.ts) composes the tabs listed in
 * js/panels/index.ts and shows a tab strip once there are two or more. A later panel joins by
 * adding a tab there, or by adding itself to an existing tab's list.
 *
 * A big panel loads lazily, to keep the main bundle small: its tab names a module
 * (`load: "history"`), built from js/lazy/<name>.ts into siray_widgets/static/lazy/<name>.js
 * (+ .css) by scripts/build.mjs. The first time a view shows the tab, `ctx.load(name)` asks the
 * kernel for the module's text (the `load-module` message), imports it from a blob: URL, adds
 * its CSS, calls its default export with the settings Python gives (`LazyModule`) and the tab
 * mounts the panels it returns. Other code loads modules the same way (the image viewer).
 */
import type { Ctx } from "../context";

export interface Panel {
  /** Where it goes in its tab: the left column, the right column, or the full width below. */
  area: "main" | "side" | "wide";
  /** Build the panel's DOM; called once per view. Listeners go through ctx (removed with it). */
  mount(ctx: Ctx): HTMLElement;
}

export interface Tab {
  /** Stable id (ids of the tab and its panel are made per view from it). */
  id: string;
  /** The tab's visible name. */
  label: string;
  panels: Panel[];
  /** A lazily loaded module whose panels join `panels` when the tab is first shown. */
  load?: string;
}

/** The default export of a lazily loaded module (js/lazy/<name>.ts): a tab's gives its panels. */
export type LazyModule<T = Panel[]> = (config: Record<string, unknown>) => T;
