// Byte helpers shared by the modules: hex, integers and EIP-55 addresses.
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, hexToBytes as nobleHexToBytes } from '@noble/hashes/utils.js';

/** A `0x`-prefixed hex string. */
export type Hex = `0x${string}`;

/** Bytes as `0x`-prefixed lowercase hex. */
export function toHex(bytes: Uint8Array): Hex {
  return `0x${bytesToHex(bytes)}`;
}

/** Bytes from hex, with or without `0x`; throws on odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array {
  const h = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  if (h.length % 2 !== 0) throw new Error(`odd-length hex: ${hex.slice(0, 20)}`);
  return nobleHexToBytes(h);
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** keccak256 (Ethereum's). */
export function keccak256(data: Uint8Array): Uint8Array {
  return keccak_256(data);
}

/** ASCII text as bytes. */
export function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Anything an integer field may be given as. */
export type Numberish = bigint | number | string;

/** An integer field as a non-negative bigint; throws on negatives, fractions and junk. */
export function toBigInt(v: Numberish, name: string): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`${name}: ${v} is not a safe integer`);
    n = BigInt(v);
  } else {
    if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) throw new Error(`${name}: ${v} is not an integer`);
    n = BigInt(v);
  }
  if (n < 0n) throw new Error(`${name}: negative`);
  return n;
}

/** Minimal big-endian bytes of an integer (zero is empty), as RLP wants it. */
export function intToBytes(n: bigint, maxBits: number, name: string): Uint8Array {
  if (n < 0n || n >= 1n << BigInt(maxBits)) throw new Error(`${name}: ${n} does not fit in ${maxBits} bits`);
  if (n === 0n) return new Uint8Array(0);
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  return nobleHexToBytes(h);
}

/** The integer of minimal big-endian bytes; refuses leading zeros (non-canonical RLP). */
export function bytesToInt(b: Uint8Array, maxBits: number, name: string): bigint {
  if (b.length === 0) return 0n;
  if (b[0] === 0) throw new Error(`${name}: integer has a leading zero byte`);
  if (b.length * 8 > maxBits) throw new Error(`${name}: integer longer than ${maxBits} bits`);
  return BigInt(`0x${bytesToHex(b)}`);
}

/** A 20-byte address from hex; throws on any other length. */
export function addressBytes(address: string, name = 'address'): Uint8Array {
  const b = fromHex(address);
  if (b.length !== 20) throw new Error(`${name}: ${address} is not a 20-byte address`);
  return b;
}

/** An address in EIP-55 mixed-case checksum form. */
export function checksumAddress(address: Uint8Array | string): Hex {
  const lower = (typeof address === 'string' ? bytesToHex(addressBytes(address)) : bytesToHex(address)).toLowerCase();
  const hash = bytesToHex(keccak_256(ascii(lower)));
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out as Hex;
}
