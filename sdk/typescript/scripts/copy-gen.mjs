// The stubs are generated once, into the repository's gen/typescript (`make gen`, checked
// for drift in CI); the package ships a copy compiled with the SDK.
import { cpSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../../../gen/typescript", import.meta.url));
const to = fileURLToPath(new URL("../src/gen", import.meta.url));
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
