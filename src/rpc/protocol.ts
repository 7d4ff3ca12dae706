/**
 * The few messages of llama.cpp's RPC protocol (ggml/src/ggml-rpc/ggml-rpc.cpp, protocol 6.x) that a probe needs,
 * as pure byte codecs. Little-endian; a request is `cmd (u8) | size (u64) | payload`, a response `size (u64) |
 * payload`. The first command of a connection must be HELLO with the client's 24 capability bytes (all zero:
 * plain TCP); then DEVICE_COUNT (no payload → u32) and GET_DEVICE_MEMORY (u32 device → u64 free, u64 total).
 */

export const RPC_CMD = { GET_DEVICE_MEMORY: 11, HELLO: 14, DEVICE_COUNT: 15 } as const;
/** The protocol major version this probe speaks (llama.cpp refuses a HELLO of another size). */
export const RPC_PROTO_MAJOR = 6;
/** Capability bytes in HELLO (RPC_CONN_CAPS_SIZE). */
export const CONN_CAPS_SIZE = 24;

/** One request's bytes. */
export function encodeRequest(cmd: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUInt8(cmd, 0);
  b.writeBigUInt64LE(BigInt(payload.length), 1);
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(b, 9);
  return b;
}

export const helloRequest = (): Buffer => encodeRequest(RPC_CMD.HELLO, new Uint8Array(CONN_CAPS_SIZE));
export const deviceCountRequest = (): Buffer => encodeRequest(RPC_CMD.DEVICE_COUNT);
export function deviceMemoryRequest(device: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(device, 0);
  return encodeRequest(RPC_CMD.GET_DEVICE_MEMORY, p);
}

/**
 * Splits the front of a byte stream into one response: undefined while incomplete, else its payload and what is
 * left. A declared size other than `expected` means the other side is not speaking this protocol.
 */
export function takeResponse(
  buf: Buffer,
  expected: number,
): { payload: Buffer; rest: Buffer } | { error: string } | undefined {
  if (buf.length < 8) return undefined;
  const size = buf.readBigUInt64LE(0);
  if (size !== BigInt(expected)) return { error: `a response of ${size} bytes where ${expected} were expected` };
  if (buf.length < 8 + expected) return undefined;
  return { payload: buf.subarray(8, 8 + expected), rest: buf.subarray(8 + expected) };
}

export interface Hello {
  major: number;
  minor: number;
  patch: number;
}

export const HELLO_RESPONSE_SIZE = 4 + CONN_CAPS_SIZE;
export function decodeHello(p: Buffer): Hello {
  return { major: p.readUInt8(0), minor: p.readUInt8(1), patch: p.readUInt8(2) };
}

export const DEVICE_COUNT_RESPONSE_SIZE = 4;
export const decodeDeviceCount = (p: Buffer): number => p.readUInt32LE(0);

export const DEVICE_MEMORY_RESPONSE_SIZE = 16;
export function decodeDeviceMemory(p: Buffer): { freeBytes: number; totalBytes: number } {
  return { freeBytes: Number(p.readBigUInt64LE(0)), totalBytes: Number(p.readBigUInt64LE(8)) };
}
