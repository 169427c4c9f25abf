/**
 * The sweep's grid: column headers are the X values, row headers the Y values (both sticky
 * while the grid scrolls), Z values are page tabs. Cells fill in as the kernel's updates
 * arrive: queued, submitted, running (with progress), stalled, success (a thumbnail), failed
 * or refused (the reason, and Retry), cancelled. Swapping the axes and hiding values happen
 * here, in the page: nothing is asked of the kernel.
 */
import type { Ctx } from "../context";
import { btn, h, listen } from "../dom";
import { type AxisInfo, type CellInfo, RETRYABLE, type Slot, type SweepInfo } from "./types";

export interface GridActions {
  /** A cell was clicked (with Ctrl, Shift or ⌘: `pick` is true). */
  open(index: number, pick: boolean): void;
  retry(index: number): void;
  /** Cells whose thumbnails the grid would show and does not have. */
  need(indexes: number[]): void;
}

const STATE_TEXT: Record<string, string> = {
  queued: "queued",
  submitted: "submitted",
  running: "running",
  stalled: "stalled",
  success: "done",
  failed: "failed",
  refused: "refused",
  cancelled: "cancelled",
};

export class SweepGrid {
  readonly el: HTMLElement;
  private info: SweepInfo | null = null;
  private readonly cells = new Map<number, CellInfo>();
  private readonly tds = new Map<number, HTMLTableCellElement>();
  private readonly urls = new Map<number, string>();
  /** Value indexes hidden, per slot. */
  private readonly hidden: Record<Slot, Set<number>> = { x: new Set(), y: new Set(), z: new Set() };
  private swapped = false;
  private page = 0;
  readonly picked: number[] = [];
  private readonly toolbar: HTMLElement;
  private readonly pages: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly filters: HTMLElement;
  readonly swapButton: HTMLButtonElement;

  constructor(
    ctx: Ctx,
    private readonly actions: GridActions,
  ) {
    this.swapButton = btn({ $: "sweep-swap", title: "Show the rows as columns and the columns as rows" }, "Swap X ⇄ Y");
    listen(this.swapButton, "click", () => {
      this.swapped = !this.swapped;
      this.swapButton.setAttribute("aria-pressed", String(this.swapped));
      this.draw();
      ctx.announce(this.swapped ? "Axes swapped: X values are now rows" : "Axes back: X values are columns");
    });
    this.filters = h("div", { cls: "sfilters", $: "sweep-filters" });
    this.toolbar = h("div", { cls: "row" }, this.swapButton, this.filters);
    this.pages = h("div", { cls: "tabs spages", role: "tablist", $: "sweep-pages", hidden: true });
    this.scroller = h("div", { cls: "sscroll", $: "sweep-scroll" });
    this.el = h("div", { cls: "sgrid", hidden: true }, this.toolbar, this.pages, this.scroller);
    ctx.cleanup(() => {
      for (const url of this.urls.values()) URL.revokeObjectURL(url);
    });
  }

  get sweep(): SweepInfo | null {
    return this.info;
  }

  /** A sweep in full: drawn anew (a new sweep forgets hidden values and thumbnails). */
  set(info: SweepInfo): void {
    const same = this.info?.id === info.id;
    this.info = info;
    if (!same) {
      for (const url of this.urls.values()) URL.revokeObjectURL(url);
      this.urls.clear();
      for (const set of Object.values(this.hidden)) set.clear();
      this.page = 0;
      this.picked.length = 0;
    }
    this.cells.clear();
    for (const c of info.cells) this.cells.set(c.index, c);
    this.el.hidden = false;
    this.draw();
  }

  /** Cells that changed: only their tiles are drawn again. */
  update(cells: CellInfo[]): void {
    for (const c of cells) {
      const old = this.cells.get(c.index);
      if (old && old.version > c.version) continue;
      this.cells.set(c.index, c);
      const td = this.tds.get(c.index);
      if (td) this.fill(td, c);
    }
    this.want();
  }

  cell(index: number): CellInfo | undefined {
    return this.cells.get(index);
  }

  thumb(index: number, url: string): void {
    const old = this.urls.get(index);
    if (old) URL.revokeObjectURL(old);
    this.urls.set(index, url);
    const td = this.tds.get(index);
    const c = this.cells.get(index);
    if (td && c) this.fill(td, c);
  }

  hasThumb(index: number): boolean {
    return this.urls.has(index);
  }

  url(index: number): string {
    return this.urls.get(index) ?? "";
  }

  pick(index: number): void {
    const at = this.picked.indexOf(index);
    if (at >= 0) this.picked.splice(at, 1);
    else if (this.picked.push(index) > 2) this.picked.shift();
    for (const [i, td] of this.tds) td.dataset.picked = String(this.picked.includes(i));
  }

  private axis(slot: Slot): AxisInfo | undefined {
    return this.info?.axes.find((a) => a.slot === slot);
  }

  /** The grid, the page tabs and the value filters, as the swap and filters say. */
  private draw(): void {
    const info = this.info;
    if (!info) return;
    const colSlot: Slot = this.swapped ? "y" : "x";
    const rowSlot: Slot = this.swapped ? "x" : "y";
    const cols = this.axis(colSlot);
    const rows = this.axis(rowSlot);
    const pageAxis = this.axis("z");
    const colLabels = cols?.labels ?? [""];
    const rowLabels = rows?.labels ?? [""];
    const at = (c: CellInfo, slot: Slot): number => c[slot] ?? 0;

    // Z pages: one tab per value (hidden values have no tab).
    const pageList = (pageAxis?.labels ?? [])
      .map((label, i) => [label, i] as const)
      .filter(([, i]) => !this.hidden.z.has(i));
    if (pageList.length && !pageList.some(([, i]) => i === this.page)) this.page = pageList[0][1];
    this.pages.hidden = !pageAxis;
    this.pages.setAttribute("aria-label", pageAxis ? `Pages: ${pageAxis.name}` : "Pages");
    this.pages.replaceChildren(
      ...pageList.map(([label, i]) => {
        const tab = btn(
          {
            role: "tab",
            "data-page": i,
            "aria-selected": String(i === this.page),
            tabindex: i === this.page ? 0 : -1,
          },
          `${pageAxis?.name} ${label}`,
        );
        listen(tab, "click", () => {
          this.page = i;
          this.draw();
          (this.pages.querySelector(`[data-page="${i}"]`) as HTMLElement | null)?.focus();
        });
        listen<KeyboardEvent>(tab, "keydown", (e) => {
          const k = pageList.findIndex(([, j]) => j === i);
          const to = { ArrowRight: k + 1, ArrowLeft: k - 1 }[e.key];
          if (to === undefined) return;
          e.preventDefault();
          const next = pageList[(to + pageList.length) % pageList.length];
          (this.pages.querySelector(`[data-page="${next[1]}"]`) as HTMLElement | null)?.click();
        });
        return tab;
      }),
    );

    // The value filters: a chip per value of each axis, pressed while shown.
    this.filters.replaceChildren(
      ...info.axes.map((a) =>
        h(
          "div",
          { cls: "row", role: "group", "aria-label": `Show ${a.name} values`, "data-filter": a.slot },
          h("span", { cls: "muted" }, `${a.slot.toUpperCase()} ${a.name}:`),
          ...a.labels.map((label, i) => {
            const chip = btn(
              {
                cls: "chip",
                "data-value": i,
                "aria-pressed": String(!this.hidden[a.slot].has(i)),
                title: `Show or hide ${a.name} ${label}`,
              },
              label,
            );
            listen(chip, "click", () => {
              const set = this.hidden[a.slot];
              if (set.has(i)) set.delete(i);
              else set.add(i);
              this.draw();
              (
                this.filters.querySelector(`[data-filter="${a.slot}"] [data-value="${i}"]`) as HTMLElement | null
              )?.focus();
            });
            return chip;
          }),
        ),
      ),
    );

    const colIdx = colLabels.map((_, i) => i).filter((i) => !this.hidden[colSlot].has(i));
    const rowIdx = rowLabels.map((_, i) => i).filter((i) => !this.hidden[rowSlot].has(i));
    const byPlace = new Map<string, CellInfo>();
    for (const c of this.cells.values()) {
      if (at(c, "z") === this.page) byPlace.set(`${at(c, colSlot)},${at(c, rowSlot)}`, c);
    }
    this.tds.clear();
    const corner = [
      cols ? h("span", {}, `${colSlot.toUpperCase()} ${cols.name} →`) : null,
      rows ? h("span", {}, `${rowSlot.toUpperCase()} ${rows.name} ↓`) : null,
    ];
    const table = h(
      "table",
      { $: "sweep-grid", "aria-label": `Sweep ${info.id}`, "data-swapped": String(this.swapped) },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { cls: "scorner", scope: "col" }, ...corner),
          ...colIdx.map((i) => h("th", { scope: "col", "data-col": i, title: colLabels[i] }, colLabels[i] || "—")),
        ),
      ),
      h(
        "tbody",
        {},
        ...rowIdx.map((j) =>
          h(
            "tr",
            { "data-row": j },
            h("th", { scope: "row", title: rowLabels[j] }, rowLabels[j] || "—"),
            ...colIdx.map((i) => {
              const c = byPlace.get(`${i},${j}`);
              const td = h("td", { $: "sweep-cell", "data-col": i, "data-row": j });
              if (c) {
                this.tds.set(c.index, td);
                this.fill(td, c);
              }
              return td;
            }),
          ),
        ),
      ),
    );
    const keep = [this.scroller.scrollLeft, this.scroller.scrollTop];
    this.scroller.replaceChildren(table);
    [this.scroller.scrollLeft, this.scroller.scrollTop] = keep;
    this.want();
  }

  /** One tile: its state, progress, thumbnail or reason, and Retry. */
  private fill(td: HTMLTableCellElement, c: CellInfo): void {
    Object.assign(td.dataset, {
      index: String(c.index),
      x: String(c.x ?? 0),
      y: String(c.y ?? 0),
      z: String(c.z ?? 0),
      state: c.state,
      picked: String(this.picked.includes(c.index)),
    });
    const word = STATE_TEXT[c.state] ?? c.state;
    const url = this.urls.get(c.index);
    const body: Array<Node | string> = [];
    if (url && c.state === "success") {
      body.push(h("img", { src: url, alt: "" }));
    } else {
      body.push(h("span", { cls: "sstate" }, word));
      if (c.state === "running" || c.state === "stalled" || c.state === "submitted") {
        body.push(
          h("progress", { max: 100, value: c.progress, "aria-label": `${c.describe}: ${c.progress}%` }),
          h("span", { cls: "muted" }, `${c.progress}%`),
        );
      }
      if (c.reason && c.state !== "success") body.push(h("span", { cls: "sreason", $: "sweep-reason" }, c.reason));
    }
    const open = btn(
      {
        cls: "sopen",
        "data-open": c.index,
        "aria-label": `${c.describe}: ${word}${c.reason ? `. ${c.reason}` : ""}`,
        title: `${c.describe}\n${word}${c.task_id ? ` · ${c.task_id}` : ""}${c.reason ? `\n${c.reason}` : ""}`,
      },
      ...body,
    );
    listen<MouseEvent>(open, "click", (e) => this.actions.open(c.index, e.ctrlKey || e.metaKey || e.shiftKey));
    const kids: HTMLElement[] = [open];
    if (RETRYABLE.has(c.state)) {
      const retry = btn({ $: "sweep-retry", title: `Send ${c.describe} again` }, "Retry");
      listen(retry, "click", () => this.actions.retry(c.index));
      kids.push(retry);
    }
    const focused = td.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset : null;
    td.replaceChildren(...kids);
    if (focused)
      (td.querySelector(focused.role ? "[data-role=sweep-retry]" : ".siray-sopen") as HTMLElement | null)?.focus();
  }

  /** Ask for the thumbnails of the page shown that are kept and not here yet. */
  private want(): void {
    const missing = [...this.tds.keys()].filter((i) => {
      const c = this.cells.get(i);
      return c && c.state === "success" && c.thumbs > 0 && !this.urls.has(i);
    });
    if (missing.length) this.actions.need(missing);
  }
}
