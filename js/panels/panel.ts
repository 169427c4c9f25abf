/**
 * The panel interface. A panel owns one DOM subtree: it builds it in `mount`, reads the
 * model, and talks to Python only through the documented messages (ctx.send) and the traits
 * it may write (ctx.commit). Panels talk to each other only through ctx's topics.
 *
 * Panels are grouped in tabs; `render` (js/widget.ts) composes the tabs listed in
 * js/panels/index.ts and shows a tab strip once there are two or more. A later panel (History,
 * Sweep, Diff) joins by adding a tab there, or by adding itself to an existing tab's list.
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
}
