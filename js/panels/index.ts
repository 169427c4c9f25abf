/**
 * The registry: the tabs of the widget, in order, and the panels of each. A tab with `load`
 * gets its panels from a lazily loaded module (js/lazy/<name>.ts; see panel.ts).
 */

import { controlsPanel } from "./controls";
import type { Tab } from "./panel";
import { requestPanel } from "./request";
import { resultsPanel } from "./results";
import { taskPanel } from "./task";

export const TABS: Tab[] = [
  { id: "generate", label: "Generate", panels: [controlsPanel, requestPanel, taskPanel, resultsPanel] },
  { id: "history", label: "History", panels: [], load: "history" },
  { id: "sweep", label: "Sweep", panels: [], load: "sweep" },
];
