/**
 * The History tab's module, loaded when the tab is first shown (see js/panels/panel.ts): the
 * gallery, the details drawer, comparing runs and reading an image's parameters.
 */
import { type HistoryConfig, historyPanel } from "../history/panel";
import type { LazyModule } from "../panels/panel";
import "../history/history.css";

const load: LazyModule = (config) => [historyPanel(config as HistoryConfig)];
export default load;
