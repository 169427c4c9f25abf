/**
 * The controls panel: one control per field, the API key box and Generate. All of it sits in
 * one fieldset, disabled at once when the view loses its kernel.
 */

import { key } from "../body";
import type { Ctx } from "../context";
import { btn, h, listen, SHORTCUT, swapLabel } from "../dom";
import { fieldView } from "./fields";
import type { Panel } from "./panel";

export const controlsPanel: Panel = {
  area: "main",
  mount(ctx: Ctx): HTMLElement {
    const views = ctx.fields.map((f) => {
      const view = fieldView(ctx, f);
      ctx.on(`change:${key(f)}`, () => {
        view.sync();
        ctx.emit("request");
      });
      view.sync();
      return view;
    });

    // -- the key: sent to Python once, as a message; never a trait, never kept in the page
    const keyInput = h("input", {
      type: "password",
      "data-role": "api-key",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "paste a key (optional)",
      "aria-label": "API key",
    });
    const keyUse = btn({ "data-role": "set-key" }, "Use key");
    const keyForget = btn({ "data-role": "forget-key" }, "Forget");
    const sendKey = (key: string): void => {
      keyInput.value = "";
      void ctx.send("set-key", { key }).then((r) => r.ok && ctx.announce("Key updated"));
    };
    listen(keyUse, "click", () => keyInput.value.trim() && sendKey(keyInput.value.trim()));
    listen(keyForget, "click", () => sendKey(""));
    listen<KeyboardEvent>(keyInput, "keydown", (e) => {
      if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        keyUse.click();
      }
    });
    const renderKey = (): void => {
      keyForget.disabled = ctx.get("key_source") !== "widget";
    };
    ctx.on("change:key_source", renderKey);
    renderKey();

    // -- Generate
    const label = swapLabel("Generate", "Starting…");
    const button = btn({ cls: "primary", "data-role": "generate" }, label.el, h("kbd", {}, SHORTCUT));
    const why = h("span", { cls: "muted why", "data-role": "pending", role: "status" });
    const price = h("span", { cls: "muted price", "data-role": "price", title: "Estimated from Siray's price list" });
    const showPrice = (): void => {
      price.textContent = ctx.get("price")?.run ?? "";
    };
    ctx.on("change:price", showPrice);
    showPrice();
    let pending = false;

    const update = (): void => {
      const starting = ctx.runs().some((r) => r.state === "starting");
      const busy = pending || starting;
      button.disabled = busy || ctx.invalid.size > 0 || ctx.gone;
      button.setAttribute("aria-busy", String(busy));
      label.show(busy ? 1 : 0);
      const text = ctx.gone
        ? "Run the widget's cell again to use it."
        : pending && ctx.conn.link === "slow"
          ? "The kernel is busy (is a cell still running?): this Generate starts when it is free."
          : ctx.invalid.size
            ? `Fix the values marked in red first (${[...ctx.invalid.keys()].join(", ")}).`
            : "";
      if (why.textContent !== text) why.textContent = text;
    };

    const generate = async (): Promise<void> => {
      if (button.disabled) return;
      pending = true;
      update();
      for (const view of views) await view.settle?.(); // a prompt's suffix is read first
      if (ctx.invalid.size || ctx.gone) {
        pending = false;
        update();
        return;
      }
      // A key typed but not applied is surely meant for this run (messages keep their order).
      if (keyInput.value.trim()) sendKey(keyInput.value.trim());
      ctx.selected = null;
      ctx.emit("shown");
      await ctx.send("generate", { body: ctx.body() });
      pending = false;
      update();
    };
    listen(button, "click", () => void generate());
    ctx.sub("generate", () => void generate());
    ctx.sub("validity", update);
    ctx.sub("link", update);
    ctx.on("change:tasks", update);
    update();

    const fieldset = h(
      "fieldset",
      { cls: "controls" },
      h("legend", { cls: "offscreen" }, "Request"),
      ...views.map((v) => v.el),
      h(
        "details",
        { cls: "key", title: "Optional: a key from the Siray dashboard." },
        h("summary", {}, "API key"),
        h("div", { cls: "row" }, keyInput, keyUse, keyForget),
      ),
      h("div", { cls: "actions" }, button, price, why),
    );
    ctx.sub("link", () => {
      fieldset.disabled = ctx.gone;
    });
    return fieldset;
  },
};
