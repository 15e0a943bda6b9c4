// Decodes and verifies the product's transactions with Stellar's JavaScript SDK. Reads JSON
// lines on stdin, one per transaction:
//   {"hash", "envelope_xdr", "memo_hash", "min_time", "max_time", "fee", "signers": [G...],
//    "payments": [[destination, amount]], "asset_code", "asset_issuer"}
// and prints one JSON line per transaction: {"hash", "ok", "detail"}.
//   node verify-envelopes.mjs NETWORK_PASSPHRASE < transactions.jsonl
import { createInterface } from "node:readline";
import * as StellarSdk from "@stellar/stellar-sdk";

const { Keypair, TransactionBuilder, FeeBumpTransaction } = StellarSdk;
const passphrase = process.argv[2];
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const asJson = (value) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));

function verify(expected) {
  const parsed = TransactionBuilder.fromXDR(expected.envelope_xdr, passphrase);
  const problems = [];
  if (hex(parsed.hash()) !== expected.hash) problems.push("hash");
  const tx = parsed instanceof FeeBumpTransaction ? parsed.innerTransaction : parsed;
  if (tx.memo.type !== "hash" || hex(tx.memo.value) !== expected.memo_hash) problems.push("memo");
  if (String(tx.timeBounds?.minTime) !== String(expected.min_time)) problems.push("min_time");
  if (String(tx.timeBounds?.maxTime) !== String(expected.max_time)) problems.push("max_time");
  if (tx.fee !== String(expected.fee)) problems.push(`fee ${tx.fee}`);
  const paid = tx.operations.map((op) => {
    const ok = op.type === "payment" && op.asset.code === expected.asset_code && op.asset.issuer === expected.asset_issuer;
    return ok ? `${op.destination} ${op.amount}` : `unexpected ${op.type}`;
  });
  const wanted = expected.payments.map(([destination, amount]) => `${destination} ${amount}`);
  if (paid.sort().join() !== wanted.sort().join()) problems.push("payments");
  const digest = Buffer.from(tx.hash());
  for (const signer of expected.signers) {
    const key = Keypair.fromPublicKey(signer);
    const signed = tx.signatures.some((decorated) => {
      const signature = Buffer.from(asJson(decorated).signature, "hex");
      return key.verify(digest, signature);
    });
    if (!signed) problems.push(`no signature of ${signer}`);
  }
  if (tx.signatures.length !== expected.signers.length) problems.push(`${tx.signatures.length} signatures`);
  return problems;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const expected = JSON.parse(line);
  try {
    const problems = verify(expected);
    console.log(JSON.stringify({ hash: expected.hash, ok: problems.length === 0, detail: problems.join(", ") }));
  } catch (err) {
    console.log(JSON.stringify({ hash: expected.hash, ok: false, detail: String(err).slice(0, 300) }));
  }
}
