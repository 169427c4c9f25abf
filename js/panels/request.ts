/**
 * The request panel: the exact JSON body Generate sends, recomputed in the same frame as the
 * input that changed it (byte-equal to Python's `request_json`), the seed it carries, the
 * same request as a Midjourney prompt, and copy buttons (texts made by Python: `snippets`).
 */
import type { Ctx } from "../context";
import { copyButton, h } from "../dom";
import type { Panel } from "./panel";

export const requestPanel: Panel = {
  area: "side",
  mount(ctx: Ctx): HTMLElement {
    const pre = h("pre", { cls: "json", $: "request-json", tabindex: 0, "aria-label": "Request body" });
    const seedNote = h("small", { cls: "muted", $: "seed-note" });
    const prompt = h("code", { $: "suffix" });
    const snippets = (): Record<string, string> => (ctx.get("snippets") as Record<string, string> | undefined) ?? {};

    /** Python makes the snippets from request_json: wait (briefly) until they match the preview. */
    const snippet = (kind: string) => (): Promise<string> => {
      const fresh = (): string | null => (snippets().json === pre.textContent ? (snippets()[kind] ?? "") : null);
      const now = fresh();
      if (now !== null) return Promise.resolve(now);
      return new Promise((resolve) => {
        const done = (): void => {
          const value = fresh();
          if (value === null) return;
          window.clearTimeout(timeout);
          ctx.model.off("change:snippets", done);
          resolve(value);
        };
        const timeout = window.setTimeout(() => {
          ctx.model.off("change:snippets", done);
          resolve(snippets()[kind] ?? "");
        }, 2000);
        ctx.model.on("change:snippets", done);
      });
    };
    const copy = (kind: string, label: string, source: () => string | Promise<string>) =>
      copyButton(kind, label, source, (t) => ctx.announce(t));

    // Seeds drawn by Python and Midjourney prompts are niji 7's; other models send as set.
    const niji = ctx.schema.builtin !== false;
    const preview = (): void => {
      const body = ctx.body();
      if (pre.textContent !== body) pre.textContent = body;
      seedNote.hidden = !niji;
      if (!niji) return;
      const random = Number(ctx.get("seed")) === -1;
      seedNote.textContent = random
        ? `Next run: seed ${ctx.get("next_seed")}, drawn at random (a new one each run).`
        : "Every run uses this seed.";
    };
    const showPrompt = (): void => {
      prompt.textContent = snippets().suffix ?? "";
    };
    ctx.sub("request", preview);
    ctx.on("change:next_seed", preview);
    ctx.on("change:snippets", showPrompt);
    preview();
    showPrompt();

    return h(
      "section",
      { cls: "panel", "aria-label": "Request" },
      h(
        "div",
        { cls: "row between" },
        h("span", { cls: "label" }, "Request body"),
        h(
          "span",
          { cls: "row", role: "group", "aria-label": "Copy the request" },
          copy("json", "JSON", () => pre.textContent ?? ""),
          copy("curl", "curl", snippet("curl")),
          copy("python", "Python", snippet("python")),
          ctx.schema.suffix !== false && copy("suffix", "Midjourney", snippet("suffix")),
        ),
      ),
      pre,
      seedNote,
      ctx.schema.suffix !== false &&
        h(
          "div",
          { cls: "suffix", title: "The same request as a Midjourney prompt (defaults left out)" },
          h("span", { cls: "muted" }, "As a Midjourney prompt: "),
          prompt,
        ),
    );
  },
};
