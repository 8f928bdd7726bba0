import { defineConfig } from "vite";

// Built into gen/console (committed; `make gen` rebuilds it, `make gen-check` fails on drift).
// Envoy answers /console/ with these files (services/cli/envoy_config.py, ADR 21).
export default defineConfig({
  base: "/console/",
  build: {
    outDir: "../gen/console",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
});
