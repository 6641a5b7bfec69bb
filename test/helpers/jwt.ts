// Signs test JWTs with node:crypto alone (jose stays the gateway's, in src/policy/jwt.ts), and key pairs as JWKs.
import { createHmac, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

export interface SignOptions {
  alg: string;
  /** HS*: the secret (string or bytes); RS/PS/ES/EdDSA: the private key. */
  key: string | Buffer | KeyObject;
  kid?: string;
  header?: Record<string, unknown>;
}

const HASH: Record<string, string> = { "256": "sha256", "384": "sha384", "512": "sha512" };

/** A compact JWS of `payload`, signed as `alg` says (or unsigned for alg "none"). */
export function signJwt(payload: Record<string, unknown>, o: SignOptions): string {
  const header = { alg: o.alg, typ: "JWT", ...(o.kid ? { kid: o.kid } : {}), ...o.header };
  const input = `${b64(header)}.${b64(payload)}`;
  const bits = o.alg.slice(2);
  let sig: Buffer;
  if (o.alg === "none") sig = Buffer.alloc(0);
  else if (o.alg.startsWith("HS")) sig = createHmac(HASH[bits]!, o.key).update(input).digest();
  else if (o.alg === "EdDSA") sig = sign(null, Buffer.from(input), o.key);
  else if (o.alg.startsWith("ES")) {
    sig = sign(HASH[bits], Buffer.from(input), { key: o.key as KeyObject, dsaEncoding: "ieee-p1363" });
  } else if (o.alg.startsWith("PS")) {
    sig = sign(HASH[bits], Buffer.from(input), {
      key: o.key as KeyObject,
      padding: 6,
      saltLength: Number(bits) / 8,
    });
  } else sig = sign(HASH[bits], Buffer.from(input), o.key);
  return `${input}.${sig.toString("base64url")}`;
}

export interface TestKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  /** The public key as a JWK with `kid`, `alg` and `use`. */
  jwk(kid: string, alg: string): Record<string, unknown>;
}

export function keyPair(kind: "rsa" | "ec" | "ed25519"): TestKeyPair {
  const { privateKey, publicKey } =
    kind === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : kind === "ec"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("ed25519");
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    jwk: (kid, alg) => ({ ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" }),
  };
}

/** Seconds since the epoch, as JWT claims count. */
export function nowS(): number {
  return Math.floor(Date.now() / 1000);
}
