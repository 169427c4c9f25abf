/**
 * The History tab: every run the store holds (this kernel's, earlier kernels', other
 * notebooks', the command line's), newest first, searchable; a details drawer; restore
 * (Use all, Remix, Use prompt, Use seed) with one undo; rerun, star, rate, delete; compare
 * two runs; read an image file's parameters (dropped anywhere on the widget, or chosen).
 *
 * Python does all of it (docs/widget-contract.md § History): this panel sends messages and
 * shows the answers. Searching sends a query per change, but never more than one at a time:
 * while one is out, the latest text waits for its answer (so results follow typing as fast
 * as the kernel answers, and stale answers are dropped).
 */
import type { Reply } from "../connection";
import type { Ctx } from "../context";
import { btn, h, listen } from "../dom";
import type { ShowPictures } from "../lazy/viewer";
import type { Panel } from "../panels/panel";
import { type DetailActions, details } from "./details";
import { diffTable } from "./diff";
import { type DiffRow, type Details as Full, labels, type Row, type StoredImage, when } from "./format";
import { Gallery } from "./gallery";
import { Thumbs } from "./thumbs";

export interface HistoryConfig {
  /** The largest image file the kernel reads (`read-image`). */
  max_image_bytes?: number;
  /** Rows per `history-query`. */
  page?: number;
}

export function historyPanel(config: HistoryConfig): Panel {
  return { area: "wide", mount: (ctx) => mount(ctx, config) };
}

function mount(ctx: Ctx, config: HistoryConfig): HTMLElement {
  const PAGE = config.page ?? 100;
  const names = labels(ctx);
  // -- what is asked and what is here
  const query = { text: "", starred: false, failed: false, aspect_ratio: "" };
  let version = 0; // of the query asked for last
  let shownVersion = -1; // of the rows in `pages`
  let pages = new Map<number, Row[]>();
  let flying = false; // a history-query is out
  let dirty = true; // the store changed while the tab was hidden
  let recording = true;
  const picked: number[] = []; // run ids picked to compare (two at most)
  let opened: number | null = null; // run whose details are shown
  let drawerRun: Full | null = null;

  // -- the toolbar
  const search = h("input", {
    type: "search",
    $: "history-search",
    placeholder: "Search prompts, notes, tags, task ids",
    "aria-label": "Search runs",
  });
  const check = (filter: string, text: string): [HTMLLabelElement, HTMLInputElement] => {
    const box = h("input", { type: "checkbox", "data-filter": filter });
    return [h("label", { cls: "check" }, box, text), box];
  };
  const [starredLabel, starred] = check("starred", "Starred");
  const [failedLabel, failed] = check("failed", "Failed");
  const ratios = ctx.fields.find((f) => f.name === "aspect_ratio")?.enum ?? [];
  const ratio = h(
    "select",
    { "data-filter": "aspect_ratio", "aria-label": "Aspect ratio", hidden: !ratios.length },
    h("option", { value: "" }, "Any aspect ratio"),
    ...ratios.map((r) => h("option", { value: String(r) }, String(r))),
  );
  const count = h("span", { cls: "muted", $: "history-count", role: "status" });
  const compare = btn({ $: "history-compare", title: "Pick two runs (Space, or ⇆ on a card)" }, "Compare");
  const undo = btn(
    { $: "history-undo", disabled: true, title: "Put back the values from before the last restore" },
    "Undo restore",
  );
  const file = h("input", {
    type: "file",
    accept: "image/png,image/jpeg,image/webp",
    $: "image-file",
    hidden: true,
    "aria-label": "Choose an image file",
  });
  const choose = btn(
    { $: "import-image", title: "Read the parameters saved in an image (or drop one on the widget)" },
    "Read an image…",
  );
  const note = h("p", { cls: "hnote", $: "history-note", "aria-live": "polite" });
  const drawer = h("div", { cls: "hdrawer", hidden: true });
  // Escape closes the drawer (and stays in the widget: JupyterLab would leave edit mode).
  listen<KeyboardEvent>(drawer, "keydown", (e) => {
    if (e.key !== "Escape") return;
    e.preventDefault();
    e.stopPropagation();
    closeDrawer();
  });
  const thumbs = new Thumbs(ctx, () => {
    gallery.render();
    for (const img of drawer.querySelectorAll<HTMLImageElement>("img[data-ref]")) {
      if (!img.getAttribute("src")) img.src = thumbs.url(img.dataset.ref) || "";
    }
  });

  const say = (text: string, error = false): void => {
    note.textContent = text;
    note.dataset.kind = error ? "error" : "note";
    if (text) ctx.announce(text);
  };

  // -- the rows
  const rowAt = (i: number): Row | undefined => pages.get(Math.floor(i / PAGE))?.[i % PAGE];
  const gallery = new Gallery(
    ctx,
    thumbs,
    {
      row: rowAt,
      need: (first, last) => {
        for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last) / PAGE); p++) ask(p);
      },
      picked: (id) => picked.includes(id),
      pick: (i) => {
        const row = rowAt(i);
        if (row) togglePick(row.id);
      },
      open: (i) => {
        const row = rowAt(i);
        if (row) void open(row.id);
      },
    },
    names,
  );
  const wanted = new Set<number>(); // pages asked for while a query was out

  function ask(page: number): void {
    if (shownVersion === version && pages.has(page)) return;
    wanted.add(page);
    if (!flying) void fetch();
  }

  async function fetch(): Promise<void> {
    const page =
      shownVersion === version ? [...wanted].find((p) => !pages.has(p)) : wanted.size ? Math.min(...wanted) : 0;
    wanted.clear();
    if (page === undefined) return;
    flying = true;
    const v = version;
    const asked = { ...query };
    const reply = await ctx.send("history-query", { ...asked, offset: page * PAGE, limit: PAGE });
    flying = false;
    if (v === version) {
      if (!reply.ok) {
        count.textContent = "";
        say(reply.error ?? "", true);
      } else {
        if (shownVersion !== v) {
          pages = new Map(); // cards whose row is the same stay as they are
          shownVersion = v;
          gallery.el.dataset.query = JSON.stringify(asked); // the search the rows shown answer
        }
        pages.set(page, reply.rows as Row[]);
        gallery.total = Number(reply.total);
        recording = reply.recording !== false;
        showCount();
      }
    }
    gallery.render(); // asks again for what is still missing
    if (!flying && (v !== version || wanted.size)) void fetch();
  }

  function reload(toTop: boolean): void {
    version++;
    dirty = false;
    if (toTop) gallery.top();
    ask(Math.floor(gallery.active / PAGE));
    if (opened !== null && !toTop) void open(opened, false);
  }

  function showCount(): void {
    const n = gallery.total;
    const filtered = query.text || query.starred || query.failed || query.aspect_ratio;
    count.textContent =
      (n
        ? `${n.toLocaleString()} run${n > 1 ? "s" : ""}`
        : filtered
          ? "No run matches"
          : "No runs yet: press Generate") + (recording ? "" : " (recording is off: SIRAY_WIDGETS_HISTORY)");
    compare.textContent = `Compare (${picked.length}/2)`;
    compare.disabled = picked.length !== 2;
  }

  function togglePick(id: number): void {
    const at = picked.indexOf(id);
    if (at >= 0) picked.splice(at, 1);
    else if (picked.push(id) > 2) picked.shift();
    showCount();
    gallery.render();
    if (drawerRun && opened === drawerRun.id) showDetails(drawerRun);
    ctx.announce(`${picked.length} of 2 runs picked to compare`);
  }

  // -- the drawer
  const showDrawer = (...kids: Array<Node | null | false>): void => {
    drawer.replaceChildren(...kids.filter((k): k is Node => !!k));
    drawer.hidden = false;
  };
  const closeDrawer = (): void => {
    opened = null;
    drawerRun = null;
    drawer.hidden = true;
    drawer.replaceChildren();
    gallery.el.focus({ preventScroll: true });
  };

  async function open(id: number, focus = true): Promise<void> {
    opened = id;
    const reply = await ctx.send("history-get", { run: id });
    if (opened !== id) return;
    if (!reply.ok) {
      if (focus) say(reply.error ?? "", true);
      else closeDrawer(); // deleted elsewhere
      return;
    }
    // A refresh (the store changed) draws the drawer again only if this run changed.
    if (focus || JSON.stringify(reply.run) !== JSON.stringify(drawerRun)) showDetails(reply.run as Full);
    if (focus) drawer.querySelector<HTMLElement>("[data-restore]")?.focus();
  }

  function showDetails(run: Full): void {
    const same = drawerRun?.id === run.id;
    drawerRun = run;
    const active = document.activeElement as HTMLElement | null;
    const focused = drawer.contains(active) ? active?.dataset : undefined;
    const before = drawer.firstElementChild;
    const scrolled = same ? (before?.scrollTop ?? 0) : 0;
    const unfolded = same && Boolean(drawer.querySelector("details")?.open);
    showDrawer(details(ctx, run, thumbs, picked.includes(run.id), actions(run)));
    // Drawn again for the same run (a star, a rating, news from the store): the user's place
    // stays: the focused button, the scroll position, the unfolded request and events.
    const fold = drawer.querySelector("details");
    if (fold) fold.open = unfolded;
    if (drawer.firstElementChild) drawer.firstElementChild.scrollTop = scrolled;
    const again = focused && drawer.querySelector<HTMLElement>(selectorOf(focused));
    again?.focus();
  }

  const act = async (kind: string, content: Record<string, unknown>, data?: ArrayBuffer): Promise<Reply> => {
    const reply = await ctx.send(kind, content, data && [data]);
    if (!reply.ok) say(reply.error ?? "", true);
    return reply;
  };

  function actions(run: Full): DetailActions {
    return {
      restore: (what) =>
        void act("history-restore", { run: run.id, what }).then((r) => {
          if (!r.ok) return;
          say(r.applied);
          undo.disabled = !r.undo;
        }),
      rerun: () =>
        void act("history-rerun", { run: run.id }).then((r) => {
          if (r.ok) say(`Rerun of ${run.task_id ?? run.id} started: the Generate tab follows it.`);
        }),
      star: (on) =>
        void act("history-star", { run: run.id, starred: on }).then((r) => {
          if (r.ok) changed(run, { starred: r.starred });
        }),
      rate: (n) =>
        void act("history-rate", { run: run.id, rating: n }).then((r) => {
          if (r.ok) changed(run, { rating: r.rating });
        }),
      remove: () =>
        void act("history-delete", { run: run.id }).then((r) => {
          if (!r.ok) return;
          const at = picked.indexOf(run.id);
          if (at >= 0) picked.splice(at, 1);
          say(`Deleted run ${run.task_id ?? run.id} and its images.`);
          closeDrawer();
          reload(false);
        }),
      pick: () => togglePick(run.id),
      close: closeDrawer,
      view: (image) => void view(run, image),
    };
  }

  /** A mark changed: the drawer and the card show it now (the next refresh confirms it). */
  function changed(run: Full, marks: Partial<Row>): void {
    Object.assign(run, marks);
    for (const rows of pages.values()) {
      for (const row of rows) if (row.id === run.id) Object.assign(row, marks);
    }
    showDetails(run);
    gallery.render();
  }

  // -- full-size images, in the image viewer (js/lazy/viewer.ts)
  let viewUrl = "";
  ctx.cleanup(() => URL.revokeObjectURL(viewUrl));

  async function view(run: Full, image: StoredImage): Promise<void> {
    if (!image.file) return;
    const [url, type] = await thumbs.one(image.file);
    if (!url) return say(`Image ${image.index} could not be read from the history.`, true);
    URL.revokeObjectURL(viewUrl); // one full-size image is kept at a time
    viewUrl = url;
    const ext = type.split("/")[1].replace("jpeg", "jpg");
    const picture = {
      src: url,
      name: `${run.task_id ?? `run-${run.id}`}-${image.index}.${ext}`,
      alt: `Image ${image.index} of run ${run.task_id ?? run.id}`,
    };
    ctx.load<ShowPictures>("viewer").then(
      (show) => show(ctx, [picture], 0),
      (e: Error) => say(e.message, true),
    );
  }

  // -- comparing two runs
  listen(compare, "click", async () => {
    if (picked.length !== 2) return;
    const [a, b] = picked;
    const reply = await act("history-diff", { a, b });
    if (!reply.ok) return;
    opened = null;
    drawerRun = null;
    const head = (r: { task_id: string | null; id: number; created_at: number }): string =>
      `${r.task_id ?? `#${r.id}`} (${when(r.created_at)})`;
    const column = (r: { thumbs: Array<string | null>; task_id: string | null; id: number }): HTMLElement =>
      h(
        "figure",
        {},
        h(
          "div",
          { cls: "himages" },
          ...r.thumbs.map((t) => h("img", { src: thumbs.url(t) || null, alt: "", "data-ref": t })),
        ),
        h("figcaption", { cls: "muted" }, r.task_id ?? `#${r.id}`),
      );
    thumbs.want([...reply.a.thumbs, ...reply.b.thumbs], true);
    const close = btn({ "aria-label": "Close the comparison" }, "×");
    listen(close, "click", closeDrawer);
    showDrawer(
      h(
        "section",
        { cls: "hdetails", $: "history-diff", "aria-label": "Comparison" },
        h("div", { cls: "row between" }, h("strong", {}, "Compare runs"), close),
        h("div", { cls: "hpair" }, column(reply.a), column(reply.b)),
        diffTable(reply.rows as DiffRow[], head(reply.a), head(reply.b)),
      ),
    );
  });

  // -- an image's parameters
  async function importFile(f: File): Promise<void> {
    const limit = config.max_image_bytes ?? Number.POSITIVE_INFINITY;
    if (f.size > limit) {
      return say(
        `${f.name} is ${(f.size / 1e6).toFixed(1)} MB: images up to ${Math.floor(limit / 2 ** 20)} MB are read.`,
        true,
      );
    }
    say(`Reading ${f.name}…`);
    const reply = await act("read-image", { name: f.name }, await f.arrayBuffer());
    if (!reply.ok) return;
    say("");
    opened = null;
    drawerRun = null;
    const apply = btn({ cls: "primary", $: "apply-image" }, "Use these parameters");
    const cancel = btn({ $: "cancel-image" }, "Cancel");
    listen(cancel, "click", closeDrawer);
    listen(
      apply,
      "click",
      () =>
        void act("apply-image", {}).then((r) => {
          if (!r.ok) return;
          say(r.applied);
          undo.disabled = !r.undo;
          closeDrawer();
        }),
    );
    const from = reply.known
      ? `It was made by run ${reply.task_id}, which is in the history.`
      : reply.task_id
        ? `Task ${reply.task_id}.`
        : "";
    showDrawer(
      h(
        "section",
        { cls: "hdetails", $: "image-params", "aria-label": `Parameters in ${reply.name}` },
        h("strong", {}, `Parameters in ${reply.name}`),
        from && h("p", { cls: "muted" }, from),
        h("code", { cls: "taskid" }, reply.prompt_text),
        diffTable(reply.rows as DiffRow[], "Now", "In the image"),
        h("div", { cls: "row" }, apply, cancel),
      ),
    );
    apply.focus();
  }

  // -- wiring
  listen(search, "input", () => {
    query.text = search.value;
    reload(true);
  });
  for (const [box, key] of [
    [starred, "starred"],
    [failed, "failed"],
  ] as const) {
    listen(box, "change", () => {
      query[key] = box.checked;
      reload(true);
    });
  }
  listen(ratio, "change", () => {
    query.aspect_ratio = ratio.value;
    reload(true);
  });
  listen(
    undo,
    "click",
    () =>
      void act("history-undo", {}).then((r) => {
        if (!r.ok) return;
        say(r.applied);
        undo.disabled = true;
      }),
  );
  listen(choose, "click", () => file.click());
  listen(file, "change", () => {
    const f = file.files?.[0];
    file.value = "";
    if (f) void importFile(f);
  });
  // (With a reason, the kernel already found nothing it can read in it: say so.)
  ctx.sub("import", (f, why) => (why ? say(String(why), true) : void importFile(f as File)));
  ctx.on("msg:custom", (msg) => {
    if ((msg as { kind?: string }).kind !== "history-changed") return;
    if (root.offsetParent) reload(false);
    else dirty = true;
  });
  // Shown again (its tab selected): catch up with what changed meanwhile.
  const shown = new ResizeObserver(() => dirty && root.offsetParent && reload(false));
  ctx.cleanup(() => shown.disconnect());

  const root = h(
    "section",
    { cls: "history", $: "history", "aria-label": "History" },
    h("div", { cls: "row htools" }, search, starredLabel, failedLabel, ratio, count),
    h("div", { cls: "row htools" }, compare, undo, choose, file, note),
    h("div", { cls: "hbody" }, gallery.el, drawer),
  );
  shown.observe(root);
  showCount();
  reload(true);
  return root;
}

/** A selector for the element described by `data` (its data-role, -restore or -rate). */
function selectorOf(data: DOMStringMap): string {
  for (const key of ["role", "restore", "rate"]) {
    const value = data[key];
    if (value) return `[data-${key}="${CSS.escape(value)}"]`;
  }
  return ":not(*)";
}
