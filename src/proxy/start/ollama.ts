/**
 * Ollama's route module as startProxy builds it (routes/ollama/, over src/ollama/), with what only startProxy
 * knows: gglib pull into the models folder, the catalog reload, whether models sit in VRAM.
 */
import type { PullOptions } from "../../hub/pull.js";
import { Registry } from "../../models/registry.js";
import type { SystemProbe } from "../../system/types.js";
import { ollamaRoutes, type OllamaExtras } from "../routes/ollama/index.js";
import type { RouteModule } from "../routes/types.js";
import type { Budget, ProxyOptions, Settings } from "./options.js";

/**
 * Ollama's route module with what only startProxy knows: POST /api/pull (gglib pull into the models folder), the
 * catalog reload, whether models sit in VRAM.
 */
export function ollamaModule(
  o: ProxyOptions,
  s: Settings,
  budget: Budget,
  probe: SystemProbe,
  reload: () => Promise<unknown>,
): RouteModule {
  const modelsDir = s.modelsDir;
  const extras: OllamaExtras = {
    onGpu: () => !budget.measureRss,
    reload,
    ...(o.registry instanceof Registry ? { registry: o.registry } : {}),
    ...(modelsDir
      ? {
          // the hub client (and @huggingface/hub, ~10 MiB resident) loads on the first pull, not with the proxy
          pull: async (ref: string, p: Pick<PullOptions, "signal" | "onProgress">) =>
            (await import("../../hub/pull.js")).pullModel(ref, {
              ...(o.pull ?? {}),
              ...p,
              modelsDir,
              probe,
              // registered when the proxy has the registry open; else the models-folder scan finds the files
              ...(o.registry instanceof Registry ? { registry: o.registry } : {}),
            }),
        }
      : {}),
  };
  return ollamaRoutes(extras);
}
