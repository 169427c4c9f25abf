/**
 * The gallery: every run that matches, newest first, as a virtualised listbox. Only the cards
 * in view (and a row either side) exist in the DOM, whatever the number of runs; rows come a
 * page at a time (`need`), thumbnails as they scroll into view.
 *
 * Keyboard: the listbox is one tab stop (aria-activedescendant names the active card); arrows,
 * Page Up/Down, Home and End move; Enter opens the details; Space picks the run for comparing
 * (aria-selected).
 */
import type { Ctx } from "../context";
import { h, listen } from "../dom";
import { ago, paramsText, type Row, stateText } from "./format";
import type { Thumbs } from "./thumbs";

/** Narrowest card; the gap between cards; the height of a card's text below its images. */
const CARD = 168;
const GAP = 10;
const TEXT = 84;

export interface GalleryHooks {
  /** The row at an index, if its page is here. */
  row(index: number): Row | undefined;
  /** Rows `first`..`last` are in view: fetch the pages missing. */
  need(first: number, last: number): void;
  picked(id: number): boolean;
  pick(index: number): void;
  open(index: number): void;
}

export class Gallery {
  readonly el: HTMLDivElement;
  total = 0;
  active = 0;
  private cols = 1;
  private rowH = CARD + TEXT + GAP;
  private readonly spacer: HTMLDivElement;
  private readonly prefix: string;
  private readonly cards = new Map<number, [string, HTMLElement]>(); // index -> [key, card]
  private frame = 0;

  constructor(
    ctx: Ctx,
    private readonly thumbs: Thumbs,
    private readonly hooks: GalleryHooks,
    private readonly names: Record<string, string>,
  ) {
    this.prefix = ctx.id("run");
    this.spacer = h("div", { cls: "hspacer" });
    this.el = h(
      "div",
      {
        cls: "hgallery",
        role: "listbox",
        tabindex: 0,
        "aria-label": "Runs, newest first",
        "aria-multiselectable": "true",
        $: "history-gallery",
      },
      this.spacer,
    );
    listen(this.el, "scroll", () => this.schedule());
    listen<KeyboardEvent>(this.el, "keydown", (e) => this.key(e));
    listen<MouseEvent>(this.el, "click", (e) => {
      const card = (e.target as HTMLElement).closest<HTMLElement>("[data-index]");
      if (!card) return;
      const index = Number(card.dataset.index);
      this.active = index;
      this.el.focus({ preventScroll: true });
      if ((e.target as HTMLElement).closest("[data-role=pick]")) this.hooks.pick(index);
      else this.hooks.open(index);
      this.render();
    });
    const observer = new ResizeObserver(() => this.schedule());
    observer.observe(this.el);
    ctx.cleanup(() => {
      observer.disconnect();
      cancelAnimationFrame(this.frame);
    });
  }

  /** Render at the next frame (scrolling and resizing come many times a frame). */
  schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  /** Back to the newest run (a new query); cards are drawn again as their rows change. */
  top(): void {
    this.el.scrollTop = 0;
    this.active = 0;
    this.render();
  }

  /** Draw the cards in view (only those whose row changed are built again). */
  render(): void {
    const width = this.el.clientWidth;
    if (!width) return; // not shown (another tab): drawn when shown
    this.active = Math.max(0, Math.min(this.active, this.total - 1));
    this.cols = Math.max(1, Math.floor((width + GAP) / (CARD + GAP)));
    const cardW = (width - GAP * (this.cols - 1)) / this.cols;
    this.rowH = Math.round(cardW + TEXT + GAP);
    this.spacer.style.height = `${Math.ceil(this.total / this.cols) * this.rowH}px`;
    const top = Math.max(0, Math.floor(this.el.scrollTop / this.rowH) - 1);
    const bottom = Math.ceil((this.el.scrollTop + this.el.clientHeight) / this.rowH) + 1;
    const first = top * this.cols;
    const last = Math.min(this.total, bottom * this.cols) - 1;
    this.hooks.need(first, last);
    const wanted: Array<string | null> = [];
    for (const [index, [, card]] of this.cards) {
      if (index < first || index > last) {
        card.remove();
        this.cards.delete(index);
      }
    }
    for (let i = first; i <= last; i++) {
      const row = this.hooks.row(i);
      const urls = row ? row.thumbs.map((t) => this.thumbs.url(t)) : [];
      const key = row
        ? [
            row.id,
            row.state,
            row.progress,
            row.starred,
            row.rating,
            this.hooks.picked(row.id),
            this.cols,
            ...urls,
          ].join()
        : "";
      const had = this.cards.get(i);
      if (!had || had[0] !== key) {
        had?.[1].remove();
        const card = row ? this.card(row, i, urls) : h("div", { cls: "hcard hload", "aria-hidden": "true" });
        card.style.cssText = `left:${(i % this.cols) * (cardW + GAP)}px;top:${Math.floor(i / this.cols) * this.rowH}px;width:${cardW}px;height:${this.rowH - GAP}px`;
        this.el.append(card);
        this.cards.set(i, [key, card]);
      }
      if (row) wanted.push(...row.thumbs);
      this.cards.get(i)?.[1].toggleAttribute("data-active", i === this.active);
    }
    this.thumbs.want(wanted);
    const active = this.cards.get(this.active)?.[1];
    if (active?.id) this.el.setAttribute("aria-activedescendant", active.id);
    else this.el.removeAttribute("aria-activedescendant");
  }

  private card(row: Row, index: number, urls: string[]): HTMLElement {
    const tiles = row.thumbs.length
      ? row.thumbs
          .slice(0, 4)
          .map((_, i) => (urls[i] ? h("img", { src: urls[i], alt: "", decoding: "async" }) : h("span", {})))
      : [
          h(
            "span",
            { cls: "hnone" },
            stateText(row) || (row.outputs ? "images not kept" : "no images"),
            h("small", {}, row.fail_reason || row.error),
          ),
        ];
    const state = stateText(row);
    const params = paramsText(row, this.names);
    return h(
      "div",
      {
        cls: "hcard",
        role: "option",
        id: `${this.prefix}-${row.id}`,
        "aria-selected": String(this.hooks.picked(row.id)),
        "aria-setsize": this.total,
        "aria-posinset": index + 1,
        "data-run": row.id,
        "data-task-id": row.task_id,
        "data-state": row.state,
        "data-index": index,
      },
      h("div", { cls: `hmosaic${row.thumbs.length > 1 ? " hfour" : ""}` }, ...tiles),
      h("div", { cls: "hprompt" }, row.prompt || "(no prompt)"),
      h("div", { cls: "hparams muted" }, params),
      h(
        "div",
        { cls: "hmeta" },
        state && h("span", { cls: "hstate", "data-state": row.state }, state),
        row.starred && h("span", { cls: "hstar", "aria-label": "starred" }, "★"),
        row.rating > 0 && h("span", { "aria-label": `rated ${row.rating} of 5` }, `${row.rating}/5`),
        h("span", { cls: "muted" }, ago(row.created_at)),
        h(
          "span",
          { cls: "hpick", $: "pick", "aria-hidden": "true", title: "Pick two runs to compare (Space)" },
          this.hooks.picked(row.id) ? "✓ compare" : "compare",
        ),
      ),
    );
  }

  private key(e: KeyboardEvent): void {
    const page = this.cols * Math.max(1, Math.floor(this.el.clientHeight / this.rowH));
    const step: Record<string, number> = {
      ArrowRight: 1,
      ArrowLeft: -1,
      ArrowDown: this.cols,
      ArrowUp: -this.cols,
      PageDown: page,
      PageUp: -page,
      Home: -this.total,
      End: this.total,
    };
    if (e.ctrlKey || e.metaKey || e.altKey || !this.total) return;
    if (e.key in step) {
      e.preventDefault();
      this.move(this.active + step[e.key]);
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.hooks.open(this.active);
    } else if (e.key === " ") {
      e.preventDefault();
      this.hooks.pick(this.active);
      this.render();
    }
  }

  /** Make `index` the active card and scroll it into view. */
  move(index: number): void {
    this.active = Math.max(0, Math.min(index, this.total - 1));
    const top = Math.floor(this.active / this.cols) * this.rowH;
    if (top < this.el.scrollTop) this.el.scrollTop = top;
    else if (top + this.rowH > this.el.scrollTop + this.el.clientHeight) {
      this.el.scrollTop = top + this.rowH - this.el.clientHeight;
    }
    this.render();
  }
}
