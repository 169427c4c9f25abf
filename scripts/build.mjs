// Builds the front end with esbuild (run by `npm run build`, which pip install runs):
//   js/widget.ts      -> siray_widgets/static/widget.js + widget.css (the bundle anywidget loads)
//   js/lazy/<name>.ts -> siray_widgets/static/lazy/<name>.js + <name>.css (a panel the kernel
//                        sends when its tab is first shown: siray_widgets/_widget_lazy.py)
// `node scripts/build.mjs --watch` (npm run dev) rebuilds on change, unminified with source maps.
import { readdirSync } from "node:fs";
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  logLevel: "warning",
};
const lazy = readdirSync("js/lazy")
  .filter((name) => name.endsWith(".ts"))
  .map((name) => `js/lazy/${name}`);
const builds = [
  { ...common, entryPoints: ["js/widget.ts"], outdir: "siray_widgets/static" },
  { ...common, entryPoints: lazy, outdir: "siray_widgets/static/lazy" },
];
if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
