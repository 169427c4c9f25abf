/**
 * The Sweep tab: the form (js/sweep/form.ts), the live expansion preview (chips per axis,
 * tasks, images, estimated cost, what an earlier run already did, the session counter), Run
 * (with a confirmation step above the session's threshold) and Cancel, the grid
 * (js/sweep/grid.ts) and a drawer with one cell's parameters ("Use these", Undo, Retry, pick
 * to compare) or the comparison of two cells.
 *
 * Python parses, expands, prices and runs everything (docs/widget-contract.md § Sweep): the
 * panel sends the form as typed, one preview at a time (the latest form waits for the answer
 * to the one before), and shows the answers.
 */
import { IMAGE_TYPE } from "../body";
import type { Reply } from "../connection";
import type { Ctx } from "../context";
import { btn, h, listen } from "../dom";
import { diffTable } from "../history/diff";
import type { DiffRow } from "../history/format";
import type { ShowPictures } from "../lazy/viewer";
import type { Panel } from "../panels/panel";
import { SweepForm } from "./form";
import { SweepGrid } from "./grid";
import {
  type CellInfo,
  type Form,
  GOING,
  type Preview,
  RETRYABLE,
  type Slot,
  type SweepConfig,
  type SweepInfo,
  type SweepUpdate,
} from "./types";

export function sweepPanel(config: SweepConfig): Panel {
  return { area: "wide", mount: (ctx) => mount(ctx, config) };
}

function mount(ctx: Ctx, config: SweepConfig): HTMLElement {
  let preview: Preview | null = null;
  let previewError = "";
  let flying = false;
  let again = false;
  let starting = false;
  let runAsked = false; // Run pressed while a preview was on its way: goes on with its answer

  // An edit makes the form the user's: a contact sheet's sweep is no longer used as saved.
  const form = new SweepForm(ctx, config, () => {
    if (form.sheet) {
      form.sheet = null;
      sheetLine.hidden = true;
    }
    ask();
  });
  const sheetLine = h("p", { cls: "muted", $: "sweep-sheet", hidden: true });
  const sheetInput = h("input", { type: "file", accept: ".png,image/png", hidden: true, $: "sweep-sheet-input" });
  const sheetButton = btn(
    { $: "sweep-open-sheet", title: "Open the sweep saved in a contact sheet PNG (or drop one on the widget)" },
    "Open a contact sheet…",
  );
  const summary = h("div", { cls: "ssummary", $: "sweep-summary", role: "status" });
  const errorLine = h("div", { cls: "serror", $: "sweep-error", role: "alert" });
  const session = h("span", { cls: "muted", $: "sweep-session" });
  const seedLine = h("span", { cls: "muted", $: "sweep-seed-note" });
  const run = btn({ cls: "primary", $: "sweep-run", disabled: true }, "Run sweep");
  const cancel = btn(
    { $: "sweep-cancel", disabled: true, title: "Stop sending; tasks already created finish" },
    "Cancel",
  );
  const sendAnyway = btn({ cls: "primary", $: "sweep-confirm-send" }, "Send");
  const back = btn({ $: "sweep-confirm-back" }, "Back");
  const confirmText = h("p", { $: "sweep-confirm-text" });
  const confirm = h(
    "div",
    { cls: "sconfirm", $: "sweep-confirm", role: "alertdialog", "aria-label": "Confirm the sweep", hidden: true },
    confirmText,
    h("div", { cls: "row" }, sendAnyway, back),
  );
  const progress = h("div", { cls: "sprogress", $: "sweep-progress", role: "status" });
  const note = h("p", { cls: "hnote", $: "sweep-note", "aria-live": "polite" });
  const compare = btn(
    { $: "sweep-compare", disabled: true, title: "Pick two cells (Ctrl+click, or Pick in a cell)" },
    "Compare (0/2)",
  );
  const drawer = h("div", { cls: "sdrawer", hidden: true });
  const grid = new SweepGrid(ctx, {
    open: (i, pick) => (pick ? togglePick(i) : void openCell(i)),
    retry: (i) => void retry(i),
    need: (cells) => thumbs.want(cells),
  });
  grid.el.querySelector(".siray-row")?.append(compare);

  const say = (text: string, error = false): void => {
    note.textContent = text;
    note.dataset.kind = error ? "error" : "note";
    if (text) ctx.announce(text);
  };

  // -- the preview --------------------------------------------------------------------------

  function ask(): void {
    confirm.hidden = true;
    if (flying) {
      again = true;
      return;
    }
    if (form.empty()) {
      preview = null;
      previewError = "";
      form.show([], "", null);
      showSummary();
      return;
    }
    flying = true;
    again = false;
    void ctx.send("sweep-preview", { form: form.value(), concurrency: form.flight() }).then((r) => {
      flying = false;
      if (again) return ask();
      if (r.ok) {
        preview = r.preview as Preview;
        previewError = "";
        form.show(preview.axes, "", null);
      } else {
        preview = null;
        previewError = r.error ?? "";
        form.show([], previewError, (r.axis as Slot | null) ?? null);
      }
      form.showBatch(preview, previewError.startsWith("prompt list") ? previewError : "");
      showSummary();
      if (runAsked) {
        runAsked = false;
        pressRun();
      }
    });
  }

  function showSummary(): void {
    const going = GOING.has(grid.sweep?.state ?? "");
    errorLine.textContent = previewError;
    errorLine.hidden = !previewError;
    if (!preview) {
      summary.textContent = previewError
        ? "Nothing can be sent: fix the value named below."
        : "Choose an axis and type its values.";
      seedLine.textContent = "";
    } else {
      const p = preview.plan;
      const s = preview.shape;
      const grid = `${s.columns} × ${s.rows}${s.pages > 1 ? ` × ${s.pages} pages` : ""}`;
      const parts = [
        `${preview.tasks} cell${preview.tasks === 1 ? "" : "s"} (${grid})`,
        `${p.send} task${p.send === 1 ? "" : "s"} to send`,
        `${p.images} images`,
        p.cost_text,
      ];
      if (p.reuse) parts.push(`${p.reuse} done by an earlier run`);
      if (p.follow) parts.push(`${p.follow} followed again`);
      if (p.remaining !== null && p.send > p.remaining) parts.push(`the session cap allows ${p.remaining} more`);
      summary.textContent = parts.join(" · ");
      seedLine.textContent =
        preview.seed === "random" ? "Seed: random for every cell" : `Seed ${preview.seed}, shared by every cell`;
      if (preview.presets.length) seedLine.textContent += ` · presets: ${preview.presets.join(" → ")}`;
    }
    run.disabled = !preview || going || starting || ctx.gone;
    const sendCount = preview?.plan.send ?? 0;
    run.textContent = preview && sendCount === 0 && preview.tasks ? "Show the sweep" : "Run sweep";
  }

  function showSession(): void {
    session.textContent = ctx.get("price")?.session ?? "";
  }

  // -- running -------------------------------------------------------------------------------

  // The preview Run acts on is the answer for the form and controls as they are now: while
  // one is on its way (a slider just moved), Run waits for it.
  listen(run, "click", () => pressRun());
  function pressRun(): void {
    if (flying) {
      runAsked = true;
      return;
    }
    if (!preview || run.disabled) return;
    if (preview.plan.needs_confirmation) {
      const p = preview.plan;
      confirmText.textContent =
        `This sweep sends ${p.send} tasks (${p.images} images, ${p.cost_text}): more than the ` +
        `${p.confirm_above} that run without asking.`;
      sendAnyway.textContent = `Send ${p.send} tasks`;
      confirm.hidden = false;
      sendAnyway.focus();
      return;
    }
    void start(false);
  }
  listen(sendAnyway, "click", () => void start(true));
  listen(back, "click", () => {
    confirm.hidden = true;
    run.focus();
  });
  listen<KeyboardEvent>(confirm, "keydown", (e) => {
    if (e.key !== "Escape") return;
    e.stopPropagation();
    confirm.hidden = true;
    run.focus();
  });

  async function start(confirmed: boolean): Promise<void> {
    if (!preview) return;
    starting = true;
    confirm.hidden = true;
    showSummary();
    const r = await ctx.send("sweep-run", {
      form: form.value(),
      key: preview.key,
      concurrency: form.flight(),
      confirm: confirmed,
    });
    starting = false;
    if (!r.ok) {
      say(r.error ?? "", true);
      if (r.preview) preview = r.preview as Preview;
      ask();
    } else {
      say("");
      show(r.sweep as SweepInfo);
      cancel.focus();
    }
    showSummary();
  }

  listen(cancel, "click", () => {
    const sweep = grid.sweep;
    if (!sweep) return;
    cancel.disabled = true;
    void ctx.send("sweep-cancel", { sweep: sweep.id }).then((r) => {
      if (!r.ok) say(r.error ?? "", true);
      else say("Cancelled: nothing new is sent; tasks already created finish and land in the grid.");
    });
  });

  async function retry(index: number): Promise<void> {
    const sweep = grid.sweep;
    if (!sweep) return;
    const r = await ctx.send("sweep-retry", { sweep: sweep.id, cell: index });
    if (!r.ok) return say(r.error ?? "", true);
    grid.update([r.cell as CellInfo]);
    sweep.state = String(r.state);
    showProgress();
    say(`Sent ${(r.cell as CellInfo).describe} again.`);
  }

  // -- the grid and its news ------------------------------------------------------------------

  function show(info: SweepInfo): void {
    if (grid.sweep?.id !== info.id) {
      closeDrawer(); // another sweep: its cells are not this one's
      compare.textContent = "Compare (0/2)";
      compare.disabled = true;
    }
    thumbs.reset(info.id); // before the grid asks for this sweep's thumbnails
    grid.set(info);
    showProgress();
    showSummary();
  }

  function showProgress(): void {
    const sweep = grid.sweep;
    if (!sweep) return;
    const p = sweep.progress;
    const counts = ["submitted", "running", "stalled", "success", "failed", "refused", "cancelled"]
      .filter((s) => p[s])
      .map((s) => `${p[s]} ${s === "success" ? "done" : s}`);
    const state = {
      running: "running",
      cancelling: "cancelling",
      done: "finished",
      cancelled: "cancelled",
      stopped: "stopped",
    }[sweep.state];
    progress.textContent = `Sweep ${state ?? sweep.state}: ${p.finished}/${p.total} finished${counts.length ? ` · ${counts.join(" · ")}` : ""}${sweep.stopped_reason ? ` · ${sweep.stopped_reason}` : ""}`;
    progress.dataset.state = sweep.state;
    cancel.disabled = sweep.state !== "running";
    showSummary();
  }

  ctx.on("msg:custom", (msg) => {
    const m = msg as SweepUpdate;
    if (m?.kind !== "sweep-update") return;
    const sweep = grid.sweep;
    if (!sweep || sweep.id !== m.sweep) {
      void refresh(); // another view of this widget started it
      return;
    }
    sweep.state = m.state;
    sweep.progress = m.progress;
    sweep.stopped_reason = m.stopped_reason;
    grid.update(m.cells);
    showProgress();
    if (!GOING.has(m.state)) ask(); // what Run would send now (the resume counts moved)
  });

  async function refresh(): Promise<void> {
    const r = await ctx.send("sweep-state");
    if (r.ok && r.sweep) {
      const info = r.sweep as SweepInfo;
      if (!grid.sweep) form.fill(info.axes);
      show(info);
      if (!grid.sweep || form.empty()) return;
      ask();
    }
  }

  // -- thumbnails: blob: URLs of bytes the kernel sends (never a path of its machine) ---------

  const thumbs = (() => {
    const wanted = new Set<number>();
    const asked = new Set<number>();
    let id = "";
    let busy = false;
    const flush = async (): Promise<void> => {
      if (busy || !wanted.size) return;
      busy = true;
      const cells = [...wanted].slice(0, 48);
      for (const c of cells) {
        wanted.delete(c);
        asked.add(c);
      }
      const sweepId = id;
      const r = await ctx.send("sweep-thumbs", { sweep: sweepId, cells });
      busy = false;
      if (r.ok && sweepId === id) {
        (r.items as Array<{ cell: number; type: string }>).forEach((item, i) => {
          const data = r.buffers?.[i];
          if (data && IMAGE_TYPE.test(item.type)) {
            grid.thumb(item.cell, URL.createObjectURL(new Blob([data], { type: item.type })));
          }
        });
      }
      for (const c of cells) asked.delete(c);
      void flush();
    };
    return {
      reset(sweepId: string): void {
        if (sweepId !== id) wanted.clear();
        id = sweepId;
      },
      want(cells: number[]): void {
        for (const c of cells) if (!asked.has(c)) wanted.add(c);
        void flush();
      },
    };
  })();

  // -- one cell, two cells ----------------------------------------------------------------------

  let opened: number | null = null;
  const fullUrls: string[] = [];
  ctx.cleanup(() => {
    for (const u of fullUrls) URL.revokeObjectURL(u);
  });

  const closeDrawer = (): void => {
    opened = null;
    drawer.hidden = true;
    drawer.replaceChildren();
  };

  function togglePick(index: number): void {
    grid.pick(index);
    compare.textContent = `Compare (${grid.picked.length}/2)`;
    compare.disabled = grid.picked.length !== 2;
    ctx.announce(`${grid.picked.length} of 2 cells picked to compare`);
    if (opened === index) void openCell(index, false);
  }

  const act = async (kind: string, content: Record<string, unknown>, buffer?: ArrayBuffer): Promise<Reply> => {
    const reply = await ctx.send(kind, content, buffer && [buffer]);
    if (!reply.ok) say(reply.error ?? "", true);
    return reply;
  };

  async function openCell(index: number, focus = true): Promise<void> {
    const sweep = grid.sweep;
    if (!sweep) return;
    opened = index;
    const r = await act("sweep-cell", { sweep: sweep.id, cell: index });
    if (!r.ok || opened !== index) return;
    const c = r.cell as CellInfo;
    const images = h("div", { cls: "himages", $: "sweep-images" });
    if (c.state === "success" && c.thumbs) {
      void ctx.send("sweep-thumbs", { sweep: sweep.id, cells: [index], all: true }).then((t) => {
        for (const u of fullUrls.splice(0)) URL.revokeObjectURL(u);
        (t.items as Array<{ image: number; type: string }> | undefined)?.forEach((item, i) => {
          const data = t.buffers?.[i];
          if (!data || !IMAGE_TYPE.test(item.type)) return;
          const url = URL.createObjectURL(new Blob([data], { type: item.type }));
          fullUrls.push(url);
          const open = btn(
            { cls: "simg", "data-image": item.image, title: "Open full size" },
            h("img", { src: url, alt: `Image ${item.image} of ${c.describe}, open full size` }),
          );
          listen(open, "click", () => void viewFull(sweep.id, index, item.image));
          images.append(open);
        });
      });
    }
    const use = btn(
      { cls: "primary", $: "sweep-use", title: "Put this cell's parameters into the controls" },
      "Use these",
    );
    const undo = btn({ $: "sweep-undo", title: "Put back the controls from before" }, "Undo");
    undo.disabled = true;
    const pick = btn({ $: "sweep-pick", "aria-pressed": String(grid.picked.includes(index)) }, "Pick to compare");
    const close = btn({ $: "sweep-close", "aria-label": "Close the cell" }, "×");
    listen(use, "click", () =>
      act("sweep-use", { sweep: sweep.id, cell: index }).then((a) => {
        if (!a.ok) return;
        say(a.applied);
        undo.disabled = !a.undo;
      }),
    );
    listen(undo, "click", () =>
      act("history-undo", {}).then((a) => {
        if (!a.ok) return;
        say(a.applied);
        undo.disabled = true;
      }),
    );
    listen(pick, "click", () => togglePick(index));
    listen(close, "click", closeDrawer);
    const kids: Array<HTMLElement | null> = [
      h("div", { cls: "row between" }, h("strong", {}, c.describe), close),
      h(
        "p",
        { cls: "muted" },
        `${c.state}${c.task_id ? ` · task ${c.task_id}` : ""}${c.origin === "earlier" ? " · from an earlier run" : ""}`,
      ),
      c.reason ? h("p", { cls: "serror", $: "sweep-cell-reason" }, c.reason) : null,
      images,
      h("code", { cls: "taskid", $: "sweep-prompt" }, String(r.prompt_text ?? "")),
      diffTable(r.rows as DiffRow[], "Controls now", "This cell"),
      h("div", { cls: "row" }, use, undo, pick),
    ];
    if (RETRYABLE.has(c.state)) {
      const again = btn({ $: "sweep-cell-retry" }, "Retry");
      listen(again, "click", () => void retry(index).then(() => openCell(index, false)));
      kids.at(-1)?.append(again);
    }
    drawer.replaceChildren(
      h("section", { cls: "hdetails", $: "sweep-details", "data-index": index, "aria-label": c.describe }, ...kids),
    );
    drawer.hidden = false;
    if (focus) use.focus();
  }

  // A cell's images at full size in the image viewer (js/lazy/viewer.ts): the kernel sends the
  // kept images' bytes (`sweep-images`), never a path of its machine.
  const viewUrls: string[] = [];
  ctx.cleanup(() => {
    for (const u of viewUrls) URL.revokeObjectURL(u);
  });
  async function viewFull(sweepId: string, index: number, image: number): Promise<void> {
    const r = await act("sweep-images", { sweep: sweepId, cell: index });
    if (!r.ok) return;
    for (const u of viewUrls.splice(0)) URL.revokeObjectURL(u); // one cell's images at a time
    const pictures = (r.items as Array<{ image: number; type: string }>).flatMap((item, i) => {
      const data = r.buffers?.[i];
      if (!data || !IMAGE_TYPE.test(item.type)) return [];
      const src = URL.createObjectURL(new Blob([data], { type: item.type }));
      viewUrls.push(src);
      const ext = item.type.split("/")[1].replace("jpeg", "jpg");
      return [
        {
          src,
          name: `${r.task_id ?? `cell-${index}`}-${item.image}.${ext}`,
          alt: `Image ${item.image} of ${r.describe}`,
        },
      ];
    });
    const at = Math.max(
      0,
      (r.items as Array<{ image: number }>).findIndex((item) => item.image === image),
    );
    ctx.load<ShowPictures>("viewer").then(
      (show) => show(ctx, pictures, at),
      (e: Error) => say(e.message, true),
    );
  }

  // -- a contact sheet: its sweep, as saved, ready to run (the done cells are reused) ----------

  function openSheet(r: Reply): void {
    form.set(r.form as Form);
    form.sheet = String(r.sheet);
    sheetLine.textContent = `The sweep saved in ${r.name}, as it was: edit a value to make it a new sweep.`;
    sheetLine.hidden = false;
    preview = r.preview as Preview;
    previewError = "";
    form.show(preview.axes, "", null);
    form.showBatch(null, "");
    showSummary();
    say(String(r.applied ?? ""));
    run.focus();
  }
  ctx.sub("sheet", (r) => openSheet(r as Reply));
  listen(sheetButton, "click", () => sheetInput.click());
  listen(sheetInput, "change", async () => {
    const f = sheetInput.files?.[0];
    sheetInput.value = "";
    if (!f) return;
    if (f.size > config.max_sheet_bytes) return say(`${f.name} is too large to be a contact sheet.`, true);
    const r = await act("sweep-sheet", { name: f.name }, await f.arrayBuffer());
    if (r.sheet) openSheet(r);
    else if (r.ok) void ctx.tab("history").then(() => ctx.emit("import", f, "")); // an image: its parameters
  });

  listen(compare, "click", async () => {
    const sweep = grid.sweep;
    if (!sweep || grid.picked.length !== 2) return;
    const [a, b] = grid.picked;
    const r = await act("sweep-diff", { sweep: sweep.id, a, b });
    if (!r.ok) return;
    opened = null;
    const column = (c: CellInfo): HTMLElement =>
      h(
        "figure",
        {},
        h("div", { cls: "himages" }, grid.url(c.index) ? h("img", { src: grid.url(c.index), alt: "" }) : null),
        h("figcaption", { cls: "muted" }, c.describe),
      );
    const close = btn({ $: "sweep-close", "aria-label": "Close the comparison" }, "×");
    listen(close, "click", closeDrawer);
    drawer.replaceChildren(
      h(
        "section",
        { cls: "hdetails", $: "sweep-diff", "aria-label": "Comparison of two cells" },
        h("div", { cls: "row between" }, h("strong", {}, "Compare cells"), close),
        h("div", { cls: "hpair" }, column(r.a as CellInfo), column(r.b as CellInfo)),
        diffTable(r.rows as DiffRow[], (r.a as CellInfo).describe, (r.b as CellInfo).describe),
      ),
    );
    drawer.hidden = false;
    close.focus();
  });

  // -- wiring -------------------------------------------------------------------------------------

  // The base of every cell is the controls' request: a change there changes the sweep.
  ctx.on("change:request_json", () => ask());
  ctx.on("change:price", showSession);
  ctx.sub("link", () => showSummary());
  void ctx.send("sweep-presets").then((r) => {
    if (r.ok) form.setPresets(r.presets as Array<{ name: string; summary: string }>);
  });
  // Stacked presets: what they change in the controls' request, before anything is sent.
  const presetPreview = (): void => {
    if (!form.presets.length) {
      form.presetNote.textContent = "";
      return;
    }
    void ctx.send("sweep-presets", { names: form.presets }).then((r) => {
      if (!r.ok) {
        form.presetNote.textContent = r.error ?? "";
        return;
      }
      const changes = (r.changes ?? []) as Array<{ field: string; before: unknown; after: unknown; presets: string[] }>;
      form.presetNote.textContent = changes.length
        ? `Every cell: ${changes.map((c) => `${c.field} ${String(c.before)} → ${String(c.after)}`).join(", ")}`
        : "These presets change nothing in the controls' request.";
    });
  };
  form.presetBar.addEventListener("click", presetPreview);
  showSession();
  showSummary();
  void refresh();

  const section = h(
    "section",
    { cls: "sweep", $: "sweep", "aria-label": "Sweep" },
    h("div", { cls: "row" }, sheetButton, sheetInput, sheetLine),
    form.el,
    h("div", { cls: "spreview" }, summary, errorLine, h("div", { cls: "row" }, seedLine, session)),
    h("div", { cls: "row" }, run, cancel, note),
    confirm,
    progress,
    h("div", { cls: "sbody" }, grid.el, drawer),
  );
  // Ctrl+Enter here is the sweep's Run (with its confirmation step), never Generate.
  listen<KeyboardEvent>(section, "keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    if (!run.disabled && !run.hidden) run.click();
  });
  return section;
}
