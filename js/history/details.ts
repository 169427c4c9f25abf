/**
 * The details drawer: everything the store knows about one run, and what can be done with it.
 * Showing it never changes the controls: only the restore buttons do, through Python.
 */
import type { Ctx } from "../context";
import { btn, copyButton, elapsedText, h, listen } from "../dom";
import { type Details, type StoredImage, shown, when } from "./format";
import type { Thumbs } from "./thumbs";

/** What the drawer's buttons ask the panel to do. */
export interface DetailActions {
  restore(what: string): void;
  rerun(): void;
  star(on: boolean): void;
  rate(n: number): void;
  remove(): void;
  pick(): void;
  close(): void;
  view(image: StoredImage): void;
}

const RESTORE: Array<[string, string, string]> = [
  ["all", "Use all", "Every field as sent, seed included: the same images again"],
  ["remix", "Remix", "Every field but the seed (the seed box stays as it is)"],
  ["prompt", "Use prompt", "Only the prompt and negative prompt"],
  ["seed", "Use seed", "Only the seed this run used"],
];

export function details(ctx: Ctx, run: Details, thumbs: Thumbs, picked: boolean, act: DetailActions): HTMLElement {
  const announce = (t: string): void => ctx.announce(t);
  const name = run.task_id ?? `#${run.id}`;
  const fields = Object.keys(run.params);
  const restore = RESTORE.map(([what, label, title]) => {
    const b = btn({ "data-restore": what, title }, label);
    listen(b, "click", () => act.restore(what));
    return b;
  });
  const rerun = btn({ $: "history-rerun", title: "Send this run's request again as a new run" }, "Rerun");
  const star = btn({ $: "history-star", "aria-pressed": String(run.starred) }, run.starred ? "★ Starred" : "☆ Star");
  const rating = h("span", { cls: "row", role: "group", "aria-label": "Rating", $: "history-rating" });
  for (let n = 1; n <= 5; n++) {
    const b = btn(
      { "data-rate": n, "aria-pressed": String(run.rating === n), "aria-label": `Rate ${n} of 5`, cls: "hrate" },
      n <= run.rating ? "★" : "☆",
    );
    listen(b, "click", () => act.rate(run.rating === n ? 0 : n));
    rating.append(b);
  }
  const pick = btn({ $: "history-pick", "aria-pressed": String(picked) }, picked ? "Picked to compare" : "Compare…");
  const remove = btn({ $: "history-delete", cls: "hdanger" }, "Delete");
  let armed = 0;
  listen(remove, "click", () => {
    if (armed) {
      window.clearTimeout(armed);
      act.remove();
      return;
    }
    remove.textContent = "Delete for good?";
    armed = window.setTimeout(() => {
      armed = 0;
      remove.textContent = "Delete";
    }, 4000);
  });
  remove.disabled = run.active;
  remove.title = run.active ? "Cancel the run first" : "Forget the run and delete its images";
  const close = btn({ $: "close-details", "aria-label": "Close the details" }, "×");
  listen(rerun, "click", act.rerun);
  listen(star, "click", () => act.star(!run.starred));
  listen(pick, "click", act.pick);
  listen(close, "click", act.close);

  const images = h("div", { cls: "himages" });
  for (const image of run.images) {
    const src = thumbs.url(image.thumb);
    const b = btn(
      {
        cls: "thumb",
        title: image.file ? `Image ${image.index}: view it full size` : image.error || "not kept",
        disabled: !image.file,
      },
      image.thumb
        ? h("img", { src: src || null, alt: `Image ${image.index}`, "data-ref": image.thumb })
        : h("span", { cls: "wait" }, image.error || `Image ${image.index}: not kept`),
    );
    listen(b, "click", () => act.view(image));
    images.append(b);
  }
  thumbs.want(
    run.images.map((i) => i.thumb),
    true,
  );

  const rows: Array<[string, string | Node, string?]> = [
    ...fields.map((f): [string, string, string?] => [
      labelOf(ctx, f),
      shown(run.params[f]),
      run.changed.includes(f) ? "changed" : undefined,
    ]),
    ["Seed used", shown(run.seed_used)],
    ["Model", run.model],
    ["State", `${run.state}${run.status ? ` (${run.status}, ${run.progress}%)` : ""}`],
    ["Created", when(run.created_at)],
    ["Submitted", when(run.submitted_at)],
    ["Finished", when(run.finished_at)],
    ["Times", timings(run.timings)],
    ["Images", `${run.images_state}${run.images_error ? `: ${run.images_error}` : ""}`],
    ["From", `${run.origin}${run.source ? `, ${run.source}` : ""}`],
  ];
  if (run.tags.length) rows.push(["Tags", run.tags.join(", ")]);
  if (run.note) rows.push(["Note", run.note]);
  const problem = [run.fail_reason, run.error].filter(Boolean).join("\n");

  return h(
    "section",
    { cls: "hdetails", $: "history-details", "data-run": run.id, "aria-label": `Run ${name}` },
    h(
      "div",
      { cls: "row between" },
      h("strong", {}, "Run ", h("code", { $: "details-task-id" }, name)),
      h("span", { cls: "row" }, run.task_id && copyButton("details-task-id", "Copy id", () => name, announce), close),
    ),
    problem &&
      h(
        "div",
        { cls: run.state === "failure" || run.state === "error" ? "error" : "muted", $: "details-error" },
        problem,
      ),
    images,
    h("div", { cls: "row", role: "group", "aria-label": "Use this run" }, ...restore),
    h("div", { cls: "row" }, rerun, star, rating, pick, remove),
    h(
      "dl",
      { cls: "hfields", $: "details-fields" },
      ...rows.flatMap(([k, v, mark]) => [h("dt", {}, k), h("dd", { "data-mark": mark ?? null }, v)]),
    ),
    h(
      "div",
      { cls: "suffix" },
      h("span", { cls: "muted" }, "As a Midjourney prompt: "),
      h("code", { $: "details-prompt" }, run.prompt_text),
      " ",
      copyButton("details-prompt", "Copy", () => run.prompt_text, announce),
    ),
    h(
      "details",
      {},
      h("summary", {}, "Request body and events"),
      h("pre", { cls: "json", $: "details-request" }, run.request_json),
      h(
        "ol",
        { cls: "hevents" },
        ...run.events.map((e) =>
          h(
            "li",
            {},
            `${new Date(e.at).toLocaleTimeString()} ${e.state}${e.status ? ` ${e.status}` : ""} ${e.progress}%`,
          ),
        ),
      ),
    ),
  );
}

function labelOf(ctx: Ctx, name: string): string {
  return ctx.fields.find((f) => f.name === name)?.label ?? name;
}

function timings(t: Record<string, number | null>): string {
  const part = (label: string, s: number | null | undefined): string =>
    typeof s === "number" ? `${label} ${elapsedText(s * 1000)}` : "";
  return (
    [part("queued", t.queued), part("generating", t.generating), part("in all", t.total)].filter(Boolean).join(", ") ||
    "—"
  );
}
