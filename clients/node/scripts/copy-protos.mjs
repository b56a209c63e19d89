// Before `npm pack`/`npm publish`: copy the engine's contract (../../proto/workflow_engine) into
// the package, so an installed copy finds its .proto files without the engine's repository.
import { cpSync, existsSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const source = path.resolve(packageRoot, "..", "..", "proto", "workflow_engine");
const target = path.join(packageRoot, "proto", "workflow_engine");
if (!existsSync(source)) {
  console.error(`copy-protos: ${source} not found (run this inside the engine's repository)`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
cpSync(source, target, { recursive: true, filter: (file) => !file.endsWith(".md") });
console.log(`copy-protos: ${path.relative(packageRoot, source)} -> ${path.relative(packageRoot, target)}`);
