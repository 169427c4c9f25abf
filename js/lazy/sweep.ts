/**
 * The Sweep tab's module, loaded when the tab is first shown (see js/panels/panel.ts): the
 * form, the live expansion preview, Run / Cancel, and the grid that fills as cells finish.
 */
import type { LazyModule } from "../panels/panel";
import { sweepPanel } from "../sweep/panel";
import type { SweepConfig } from "../sweep/types";
import "../sweep/sweep.css";

const load: LazyModule = (config) => [sweepPanel(config as unknown as SweepConfig)];
export default load;
