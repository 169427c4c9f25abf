/**
 * A comparison table: every field in two columns, the rows that differ marked
 * (`tr[data-differs=true]`) and listed first in words for screen readers. Used for two runs
 * (`history-diff`) and for an image's parameters against the controls (`read-image`).
 */
import { h } from "../dom";
import { type DiffRow, shown } from "./format";

export function diffTable(rows: DiffRow[], headA: string, headB: string): HTMLElement {
  const differ = rows.filter((r) => r.differs);
  const summary = differ.length
    ? `${differ.length} field${differ.length > 1 ? "s" : ""} differ: ${differ.map((r) => r.label).join(", ")}.`
    : "No field differs.";
  return h(
    "div",
    { cls: "hdiff" },
    h("p", { $: "diff-summary" }, summary),
    h(
      "table",
      { $: "diff" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Field"),
          h("th", { scope: "col" }, headA),
          h("th", { scope: "col" }, headB),
        ),
      ),
      h(
        "tbody",
        {},
        ...rows.map((r) =>
          h(
            "tr",
            { "data-field": r.name, "data-differs": String(r.differs) },
            h("th", { scope: "row" }, r.label),
            h("td", {}, shown(r.a)),
            h("td", {}, shown(r.b)),
          ),
        ),
      ),
    ),
  );
}
