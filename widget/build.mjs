// Bundles the widget (loader + iframe app) and the agent workspace's browser code with esbuild.
// Output goes into the Python package (gitignored): built output is never committed.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const widgetOut = path.join(repo, "src/caredesk/web/static/widget");
const uiOut = path.join(repo, "src/caredesk/ui/static/dist");
const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["es2020"],
  legalComments: "none",
  nodePaths: [path.join(here, "node_modules")],
  logLevel: "warning",
};

await Promise.all([
  build({ ...common, entryPoints: [path.join(here, "src/loader.ts")], outfile: path.join(widgetOut, "loader.js"), format: "iife" }),
  build({ ...common, entryPoints: [path.join(here, "src/frame.ts")], outfile: path.join(widgetOut, "frame.js"), format: "iife" }),
  build({ ...common, entryPoints: [path.join(here, "src/frame.css")], outfile: path.join(widgetOut, "frame.css") }),
  build({ ...common, entryPoints: [path.join(here, "src/demo.css")], outfile: path.join(widgetOut, "demo.css") }),
  build({ ...common, entryPoints: [path.join(here, "src/workspace/main.ts")], outfile: path.join(uiOut, "workspace.js"), format: "iife" }),
]);
console.log("built widget into", path.relative(repo, widgetOut), "and workspace into", path.relative(repo, uiOut));
