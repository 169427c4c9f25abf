/**
 * The task panel: the runs (one thumbnail button each once there are two, titled with the
 * run's own request), and for the run shown its request, task id, status, timeline, progress,
 * elapsed time, seed ("Use this seed"), error (with Retry), note, and a stall (Keep waiting,
 * or Cancel). A run that ended says how it ended everywhere (never its last status).
 */
import { ACTIVE, type Ctx, type Run } from "../context";
import { btn, copyButton, elapsedText, h, listen, SHORTCUT, swapLabel } from "../dom";
import type { Panel } from "./panel";

const TERMINAL = new Set(["SUCCESS", "FAILURE"]);
const ENDS = ["cancelled", "error"]; // run states with a timeline step of their own

export const taskPanel: Panel = {
  area: "side",
  mount(ctx: Ctx): HTMLElement {
    const announce = (t: string): void => ctx.announce(t);
    const taskId = h("code", { cls: "taskid", $: "task-id" });
    const copyId = copyButton("task-id", "Copy id", () => taskId.textContent ?? "", announce);
    const status = h("span", { cls: "status", $: "status", "aria-live": "polite" });
    const elapsed = h("span", { cls: "muted", $: "elapsed" });
    const cancelText = swapLabel("Cancel", "Cancelling…");
    const cancel = btn({ $: "cancel" }, cancelText.el);
    const timeline = h("ol", { cls: "timeline", $: "timeline", "aria-label": "Task status" });
    const bar = h("progress", {
      max: 100,
      value: 0,
      $: "progress",
      "aria-label": "Progress",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": 0,
    });
    const percent = h("span", { cls: "muted", $: "percent" }, "0%");
    const seedText = h("span", { $: "run-seed" });
    const useSeed = btn({ $: "use-seed", title: "Put this run's seed in the seed box" }, "Use this seed");
    const errorBox = h("div", { cls: "error", $: "error", role: "alert" });
    const retry = btn({ $: "retry", title: "Send this run's request again (same seed)" }, "Retry");
    const note = h("div", { cls: "muted", $: "note" });
    const asked = h("div", { cls: "muted taskid", $: "run-request" });
    // A stall: Keep waiting here, or Cancel (the button beside the status, which says "stalled").
    const keep = btn({ $: "keep-waiting" }, "Keep waiting");
    const stall = h(
      "div",
      { cls: "error", $: "stalled", role: "status" },
      "No change for a while: the task may be stuck. ",
      keep,
    );
    const chips = h("div", { cls: "chips", $: "tasks", role: "group", "aria-label": "Runs" });
    const steps = new Map<string, HTMLLIElement>();
    for (const step of [...ctx.schema.task_statuses, ...ENDS]) {
      const li = h("li", { "data-step": step }, ENDS.includes(step) ? step : ctx.label(step));
      steps.set(step, li);
      timeline.append(li);
    }
    const cancelling = new Set<string>();
    let timer = 0;
    ctx.cleanup(() => window.clearInterval(timer));

    listen(cancel, "click", () => {
      const run = ctx.shownRun();
      if (!run) return;
      cancelling.add(run.id);
      void ctx.send("cancel", { run: run.id });
      render();
    });
    listen(keep, "click", () => {
      const run = ctx.shownRun();
      if (run) void ctx.send("keep-waiting", { run: run.id });
    });
    listen(useSeed, "click", () => {
      const seed = ctx.shownRun()?.seed;
      if (seed === undefined) return;
      ctx.commit("seed", seed);
      announce(`Seed ${seed} is in the seed box`);
      render();
    });
    listen(retry, "click", () => {
      const run = ctx.shownRun();
      if (!run) return;
      ctx.selected = null;
      void ctx.send("retry", { run: run.id }).then(() => ctx.emit("shown"));
    });

    function tick(): void {
      const run = ctx.shownRun();
      elapsed.textContent = run ? elapsedText((run.finished_at ?? Date.now()) - run.started_at) : "";
      const running = ctx.runs().some((r) => ACTIVE.has(r.state));
      if (running && !timer) timer = window.setInterval(tick, 200);
      if (!running && timer) {
        window.clearInterval(timer);
        timer = 0;
      }
    }

    function renderTimeline(run: Run | undefined): void {
      const order = ctx.schema.task_statuses.filter((s) => !TERMINAL.has(s));
      const at = run ? order.indexOf(run.status) : -1;
      const finished = Boolean(run && !ACTIVE.has(run.state));
      const terminal = Boolean(run && TERMINAL.has(run.status));
      for (const [step, li] of steps) {
        const index = order.indexOf(step);
        let state = "todo";
        let hidden = false;
        if (index >= 0) {
          if (terminal || (run && index < at)) state = "done";
          else if (run && index === at) state = finished ? "stopped" : "current";
        } else if (TERMINAL.has(step)) {
          // Only the end that happened is shown; while running, success is the goal.
          hidden = terminal ? run?.status !== step : finished || step !== "SUCCESS";
          if (terminal && run?.status === step) state = "current";
        } else {
          hidden = run?.state !== step;
          if (!hidden) state = "current";
        }
        li.dataset.state = state;
        li.hidden = hidden;
        if (state === "current") li.setAttribute("aria-current", "step");
        else li.removeAttribute("aria-current");
      }
    }

    function renderChips(all: Run[], run: Run | undefined): void {
      const focused = (document.activeElement as HTMLElement | null)?.dataset?.run;
      chips.replaceChildren();
      if (all.length < 2) return;
      all.forEach((r, i) => {
        const src = r.outputs[0] ? ctx.src(r.outputs[0]) : "";
        const chip = btn(
          {
            cls: "chip",
            "data-run": r.id,
            "data-state": r.state,
            "aria-pressed": String(r === run),
            title: r.summary,
          },
          src && h("img", { src, alt: "" }),
          `#${i + 1} ${ctx.word(r)}`,
        );
        listen(chip, "click", () => {
          ctx.selected = r === all.at(-1) ? null : r.id;
          ctx.emit("shown");
        });
        chips.append(chip);
        if (focused === r.id && root.contains(document.activeElement)) chip.focus();
      });
    }

    function render(): void {
      const all = ctx.runs();
      const run = ctx.shownRun();
      const latest = all.at(-1);
      taskId.textContent = run?.task_id ?? "";
      copyId.hidden = !run?.task_id;
      const word = ctx.word(run);
      status.textContent = word;
      status.dataset.status = word;
      status.dataset.state = run?.state ?? "";
      renderTimeline(run);

      const value = run ? Math.max(0, Math.min(100, run.progress)) : 0;
      bar.value = value;
      bar.setAttribute("aria-valuenow", String(value));
      percent.textContent = `${value}%`;

      const active = Boolean(run && ACTIVE.has(run.state));
      stall.hidden = !run?.stalled; // Python says so only while the run is going
      asked.textContent = run?.summary ? `Request: ${run.summary}` : "";
      for (const id of cancelling) if (!all.some((r) => r.id === id && ACTIVE.has(r.state))) cancelling.delete(id);
      cancelText.show(run && cancelling.has(run.id) ? 1 : 0);
      cancel.disabled = !active || cancelling.has(run?.id ?? "") || ctx.gone;

      const seed = run?.seed;
      seedText.textContent = seed === undefined ? "" : `Seed ${seed}${run?.seed_random ? " (drawn at random)" : ""}`;
      useSeed.hidden = seed === undefined;
      useSeed.disabled = ctx.gone || seed === Number(ctx.get("seed"));

      const error = run === latest ? String(ctx.get("error") ?? "") : (run?.error ?? "");
      errorBox.textContent = error;
      errorBox.hidden = !error;
      retry.hidden = !(run && (run.state === "failure" || run.state === "error"));
      retry.disabled = ctx.gone;
      note.textContent = run?.note || (run || error ? "" : `No task yet: press Generate (${SHORTCUT}).`);
      note.hidden = !note.textContent;
      renderChips(all, run);
      tick();
    }

    ctx.on("change:tasks", render);
    ctx.on("change:error", render);
    ctx.on("change:seed", render);
    ctx.sub("shown", render);
    ctx.sub("link", render);
    ctx.sub("images", render);

    const root = h(
      "section",
      { cls: "panel", "aria-label": "Task" },
      h(
        "div",
        { cls: "row between" },
        h("span", { cls: "row" }, h("span", { cls: "label" }, "Task"), taskId, copyId),
        h("span", { cls: "row" }, status, elapsed, cancel),
      ),
      asked,
      timeline,
      h("div", { cls: "row" }, bar, percent),
      stall,
      h("div", { cls: "row", $: "seed-row" }, seedText, useSeed),
      h("div", { cls: "row errrow" }, errorBox, retry),
      note,
      chips,
    );
    render();
    return root;
  },
};
