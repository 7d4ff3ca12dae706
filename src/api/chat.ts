// gglib-runtime/chat: the terminal chat: stream parsing, rendering, conversation, the session.
export * from "../chat/stream.js";
export * from "../chat/think-splitter.js";
export * from "../chat/client.js";
export * from "../chat/render.js";
export * from "../chat/conversation.js";
export * from "../chat/session.js";
export * from "../chat/commands.js";
