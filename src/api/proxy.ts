// gglib-runtime/proxy: the OpenAI-compatible proxy (startProxy, scheduler, controller, server, config).
export * from "../proxy/index.js";
