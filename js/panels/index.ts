/**
 * The registry: the tabs of the widget, in order, and the panels of each. History, Sweep and
 * Diff join here as tabs of their own.
 */

import { controlsPanel } from "./controls";
import type { Tab } from "./panel";
import { requestPanel } from "./request";
import { resultsPanel } from "./results";
import { taskPanel } from "./task";

export const TABS: Tab[] = [
  { id: "generate", label: "Generate", panels: [controlsPanel, requestPanel, taskPanel, resultsPanel] },
];
