// Drives a running sandbox with Stellar's JavaScript SDK, one named check per call or link a
// client of Horizon uses, and prints one JSON line per check: {"check", "ok", "detail"}.
//   node conformance.mjs HORIZON_URL NETWORK_PASSPHRASE
//   node conformance.mjs --list          (the names of the checks, one a line)
// Every key is made here at run time; the root account's key derives from the passphrase.
import { createHash } from "node:crypto";
import * as StellarSdk from "@stellar/stellar-sdk";

const { Horizon, Keypair, TransactionBuilder, Asset, Operation, Memo, xdr } = StellarSdk;

export const CHECKS = [
  "root_horizon_version",
  "root_links",
  "friendbot",
  "load_account",
  "account_links_listed",
  "account_link_transactions",
  "account_link_operations",
  "account_link_payments",
  "account_link_effects",
  "account_link_offers",
  "account_link_trades",
  "submit_change_trust",
  "submit_payment",
  "submit_set_options_signer",
  "transaction_lookup",
  "transaction_envelope_verifies",
  "transaction_result_xdr",
  "transaction_fee_meta_xdr",
  "transaction_link_self",
  "transaction_link_account",
  "transaction_link_ledger",
  "transaction_link_operations",
  "transaction_link_effects",
  "transaction_link_precedes",
  "transaction_link_succeeds",
  "operation_by_id",
  "operation_link_transaction",
  "operation_link_effects",
  "operation_link_precedes",
  "operation_link_succeeds",
  "payment_link_effects",
  "payments_global",
  "transactions_global",
  "operations_global",
  "effects_global",
  "payments_for_account_join_transactions",
  "operations_for_transaction",
  "effects_for_transaction",
  "effects_payment_credited_debited",
  "effects_trustline_created",
  "effects_trustline_updated",
  "effects_signer_changes",
  "ledger_by_sequence",
  "ledger_header_xdr",
  "ledger_link_transactions",
  "ledger_link_operations",
  "ledger_link_payments",
  "ledger_link_effects",
  "ledgers_page_desc",
  "paging_next_prev",
  "paging_cursor_order",
  "fee_stats",
  "error_not_found",
  "error_bad_request_cursor",
  "error_transaction_failed",
  "error_unsupported_media_type",
  "async_submit_pending",
  "async_error_result_xdr",
  "async_duplicate",
  "sse_preamble_and_ids",
  "sse_last_event_id_resumes",
  "stream_payments_for_account",
  "stream_payments_global",
  "stream_transactions_for_account",
  "stream_transactions_global",
  "stream_operations_for_account",
  "stream_operations_global",
  "stream_ledgers",
];

if (process.argv[2] === "--list") {
  for (const name of CHECKS) console.log(name);
  process.exit(0);
}

const [url, passphrase] = process.argv.slice(2);
const server = new Horizon.Server(url, { allowHttp: true });
const results = new Map();

function record(name, ok, detail = "") {
  if (!CHECKS.includes(name)) throw new Error(`unlisted check ${name}`);
  results.set(name, { check: name, ok: Boolean(ok), detail: String(detail).slice(0, 500) });
}

async function check(name, fn) {
  try {
    const outcome = await fn();
    record(name, outcome !== false, outcome === false ? "assertion failed" : "");
  } catch (err) {
    const body = err?.response?.data ? JSON.stringify(err.response.data).slice(0, 300) : "";
    record(name, false, `${err?.name ?? "Error"}: ${err?.message ?? err} ${body}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest();
const hex = (bytes) => Buffer.from(bytes).toString("hex");
// XDR values in their JSON form (SEP-51), so the checks do not depend on accessor styles
const asJson = (value) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
const root = Keypair.fromRawEd25519Seed(sha256(Buffer.from(passphrase)));

async function build(source, ops, { memo, fee = "1000" } = {}) {
  const account = await server.loadAccount(source.publicKey());
  const builder = new TransactionBuilder(account, { fee, networkPassphrase: passphrase }).setTimeout(300);
  for (const op of ops) builder.addOperation(op);
  if (memo) builder.addMemo(memo);
  const tx = builder.build();
  tx.sign(source);
  return tx;
}

const submit = async (source, ops, options) => server.submitTransaction(await build(source, ops, options), {
  skipMemoRequiredCheck: true,
});

// Opens a stream, runs `trigger`, and resolves with the first message `wanted` accepts.
function streamUntil(builder, wanted, trigger, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    let close = () => {};
    const timer = setTimeout(() => {
      close();
      reject(new Error("no matching event in time"));
    }, timeoutMs);
    close = builder.stream({
      onmessage: (message) => {
        if (wanted(message)) {
          clearTimeout(timer);
          close();
          resolve(message);
        }
      },
      onerror: () => {},
    });
    setTimeout(() => trigger().catch((err) => { clearTimeout(timer); close(); reject(err); }), 300);
  });
}

// Reads the raw event stream for up to `ms` milliseconds.
async function rawStream(path, headers = {}, ms = 1500) {
  const controller = new AbortController();
  const response = await fetch(`${url}${path}`, {
    headers: { Accept: "text/event-stream", ...headers },
    signal: controller.signal,
  });
  let text = "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const stop = setTimeout(() => controller.abort(), ms);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch (err) {
    if (err.name !== "AbortError") throw err;
  } finally {
    clearTimeout(stop);
  }
  return { response, text };
}

function sseEvents(text) {
  return text
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const event = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) event.comment = true;
        const at = line.indexOf(": ");
        if (at > 0) event[line.slice(0, at)] = line.slice(at + 2);
      }
      return event;
    });
}

async function expectError(fn, status, slug) {
  try {
    await fn();
  } catch (err) {
    const response = err?.response;
    assert(response, `no HTTP answer: ${err}`);
    assert(response.status === status, `status ${response.status}`);
    assert(response.data?.type === `https://stellar.org/horizon-errors/${slug}`, `type ${response.data?.type}`);
    return response;
  }
  throw new Error("no error");
}

async function main() {
  const alice = Keypair.random();
  const bob = Keypair.random();
  const issuer = Keypair.random();
  const signer = Keypair.random();
  const tft = new Asset("TFT", issuer.publicKey());

  await check("root_horizon_version", async () => {
    const answer = await (await fetch(`${url}/`)).json();
    assert(/^\d+\.\d+\.\d+/.test(answer.horizon_version), answer.horizon_version);
    assert(answer.network_passphrase === passphrase, "passphrase");
  });
  await check("root_links", async () => {
    const links = (await (await fetch(`${url}/`)).json())._links;
    const expected = [
      "account", "accounts", "account_transactions", "claimable_balances", "assets", "effects", "fee_stats",
      "friendbot", "ledger", "ledgers", "liquidity_pools", "offer", "offers", "operation", "operations",
      "order_book", "payments", "self", "strict_receive_paths", "strict_send_paths", "trade_aggregations",
      "trades", "transaction", "transactions",
    ];
    const missing = expected.filter((name) => !links[name]);
    assert(missing.length === 0, `missing ${missing}`);
  });
  await check("friendbot", async () => {
    for (const kp of [alice, bob, issuer, signer]) {
      const answer = await server.friendbot(kp.publicKey()).call();
      assert(answer.successful === true, "not successful");
    }
  });
  let aliceAccount;
  await check("load_account", async () => {
    aliceAccount = await server.loadAccount(alice.publicKey());
    assert(aliceAccount.accountId() === alice.publicKey(), "id");
    assert(typeof aliceAccount.sequenceNumber() === "string", "sequence");
  });

  let trustResponse;
  await check("submit_change_trust", async () => {
    trustResponse = await submit(bob, [Operation.changeTrust({ asset: tft })]);
    await submit(alice, [Operation.changeTrust({ asset: tft })]);
    assert(trustResponse.successful, "trust");
  });
  let payResponse;
  await check("submit_payment", async () => {
    await submit(issuer, [Operation.payment({ destination: alice.publicKey(), asset: tft, amount: "1000" })]);
    // with the SDK's memo-required check (SEP-29), which reads each destination's data
    payResponse = await server.submitTransaction(
      await build(
        alice,
        [
          Operation.payment({ destination: bob.publicKey(), asset: tft, amount: "12.5" }),
          Operation.payment({ destination: bob.publicKey(), asset: Asset.native(), amount: "1" }),
        ],
        { memo: Memo.hash(sha256(Buffer.from("receipt")).toString("hex")) },
      ),
    );
    assert(payResponse.successful && payResponse.hash, "payment");
  });
  await check("submit_set_options_signer", async () => {
    await submit(alice, [Operation.setOptions({ signer: { ed25519PublicKey: signer.publicKey(), weight: 1 } })]);
    await submit(alice, [Operation.setOptions({ signer: { ed25519PublicKey: signer.publicKey(), weight: 2 } })]);
    await submit(alice, [Operation.setOptions({ signer: { ed25519PublicKey: signer.publicKey(), weight: 0 } })]);
    await submit(bob, [Operation.changeTrust({ asset: tft, limit: "5000" })]);
  });

  let account;
  await check("account_links_listed", async () => {
    account = await server.accounts().accountId(alice.publicKey()).call();
    for (const name of ["transactions", "operations", "payments", "effects", "offers", "trades", "data"]) {
      assert(typeof account[name] === "function", `link ${name}`);
    }
  });
  for (const name of ["transactions", "operations", "payments", "effects", "offers", "trades"]) {
    await check(`account_link_${name}`, async () => {
      const page = await account[name]({ limit: 200 });
      assert(Array.isArray(page.records), "records");
      if (!["offers", "trades"].includes(name)) assert(page.records.length > 0, "empty");
    });
  }

  let tx;
  await check("transaction_lookup", async () => {
    tx = await server.transactions().transaction(payResponse.hash).call();
    assert(tx.hash === payResponse.hash && tx.successful === true, "hash");
    assert(typeof tx.paging_token === "string" && typeof tx.fee_charged === "string", "fields");
  });
  await check("transaction_envelope_verifies", async () => {
    const parsed = TransactionBuilder.fromXDR(tx.envelope_xdr, passphrase);
    assert(hex(parsed.hash()) === tx.hash, "hash");
    assert(parsed.operations.length === 2 && parsed.operations[0].amount === "12.5000000", "ops");
    assert(parsed.memo.type === "hash", "memo");
    assert(Buffer.from(parsed.memo.value).toString("base64") === tx.memo, "memo value");
    assert(parsed.fee === tx.max_fee, "fee");
    const decorated = parsed.signatures[0];
    const signature = asJson(decorated).signature; // hex in the JSON form
    assert(alice.verify(Buffer.from(parsed.hash()), Buffer.from(signature, "hex")), "signature");
    assert(hex(Buffer.from(tx.signatures[0], "base64")) === signature, "record's signature");
    assert(tx.preconditions.timebounds.max_time === String(parsed.timeBounds.maxTime), "bounds");
  });
  await check("transaction_result_xdr", async () => {
    const result = asJson(xdr.TransactionResult.fromXDR(tx.result_xdr, "base64"));
    assert(JSON.stringify(result.result).includes("tx_success"), JSON.stringify(result.result));
    assert(result.fee_charged === tx.fee_charged, "fee charged");
  });
  await check("transaction_fee_meta_xdr", async () => {
    const changes = asJson(xdr.decodeArray(xdr.LedgerEntryChange, tx.fee_meta_xdr, "base64"));
    assert(changes.length === 2, "two changes");
    const before = changes[0].state.data.account;
    const after = changes[1].updated.data.account;
    const paid = BigInt(before.balance) - BigInt(after.balance);
    assert(paid.toString() === tx.fee_charged, `fee ${paid}`);
    assert(after.account_id === tx.fee_account, "account");
  });
  await check("transaction_link_self", async () => (await tx.self()).hash === tx.hash);
  await check("transaction_link_account", async () => (await tx.account()).id === alice.publicKey());
  await check("transaction_link_ledger", async () => (await tx.ledger()).sequence === tx.ledger_attr);
  let txOps;
  await check("transaction_link_operations", async () => {
    txOps = (await tx.operations()).records;
    assert(txOps.length === 2 && txOps.every((op) => op.transaction_hash === tx.hash), "ops");
  });
  await check("transaction_link_effects", async () => {
    const effects = (await tx.effects()).records;
    assert(effects.length === 4, `effects ${effects.length}`);
  });
  await check("transaction_link_precedes", async () => {
    const later = (await tx.precedes()).records;
    assert(later.length > 0 && later.every((t) => BigInt(t.paging_token) > BigInt(tx.paging_token)), "later");
  });
  await check("transaction_link_succeeds", async () => {
    const earlier = (await tx.succeeds()).records;
    assert(earlier.length > 0 && earlier.every((t) => BigInt(t.paging_token) < BigInt(tx.paging_token)), "earlier");
  });

  let op;
  await check("operation_by_id", async () => {
    op = await server.operations().operation(txOps[0].id).call();
    assert(op.id === txOps[0].id && op.type === "payment" && op.amount === "12.5000000", "op");
  });
  await check("operation_link_transaction", async () => (await op.transaction()).hash === tx.hash);
  await check("operation_link_effects", async () => {
    const effects = (await op.effects()).records;
    assert(effects.length === 2 && effects.every((e) => e.paging_token.startsWith(`${op.id}-`)), "effects");
  });
  await check("operation_link_precedes", async () => Array.isArray((await op.precedes()).records));
  await check("operation_link_succeeds", async () => Array.isArray((await op.succeeds()).records));
  await check("payment_link_effects", async () => {
    const payment = (await server.payments().forTransaction(tx.hash).call()).records[0];
    const effects = (await payment.effects()).records;
    assert(effects.map((e) => e.type).join() === "account_credited,account_debited", effects.map((e) => e.type));
  });

  for (const [name, builder, wanted] of [
    ["payments_global", () => server.payments(), (r) => r.transaction_hash === tx.hash],
    ["transactions_global", () => server.transactions(), (r) => r.hash === tx.hash],
    ["operations_global", () => server.operations(), (r) => r.type === "set_options"],
    ["effects_global", () => server.effects(), (r) => r.type === "trustline_created"],
  ]) {
    await check(name, async () => {
      const page = await builder().order("desc").limit(200).call();
      assert(page.records.some(wanted), "record missing");
    });
  }
  await check("payments_for_account_join_transactions", async () => {
    const page = await server.payments().forAccount(bob.publicKey()).join("transactions").limit(200).call();
    const joined = page.records.find((p) => p.transaction_hash === tx.hash);
    assert(joined, "payment");
    const joinedTx = await joined.transaction();
    assert(joinedTx.hash === tx.hash, "joined");
  });
  await check("operations_for_transaction", async () => {
    return (await server.operations().forTransaction(tx.hash).call()).records.length === 2;
  });
  await check("effects_for_transaction", async () => {
    return (await server.effects().forTransaction(tx.hash).call()).records.length === 4;
  });
  const effectsOf = async (kp) => (await server.effects().forAccount(kp.publicKey()).limit(200).call()).records;
  await check("effects_payment_credited_debited", async () => {
    const bobEffects = await effectsOf(bob);
    const aliceEffects = await effectsOf(alice);
    assert(bobEffects.some((e) => e.type === "account_credited" && e.amount === "12.5000000" && e.asset_code === "TFT"),
      "credited");
    assert(aliceEffects.some((e) => e.type === "account_debited" && e.amount === "12.5000000"), "debited");
  });
  await check("effects_trustline_created", async () => {
    return (await effectsOf(bob)).some((e) => e.type === "trustline_created" && e.asset_code === "TFT");
  });
  await check("effects_trustline_updated", async () => {
    return (await effectsOf(bob)).some((e) => e.type === "trustline_updated" && e.limit === "5000.0000000");
  });
  await check("effects_signer_changes", async () => {
    const kinds = (await effectsOf(alice)).filter((e) => e.public_key === signer.publicKey()).map((e) => e.type);
    assert(kinds.join() === "signer_created,signer_updated,signer_removed", kinds.join());
  });

  let ledger;
  await check("ledger_by_sequence", async () => {
    ledger = await server.ledgers().ledger(tx.ledger_attr).call();
    assert(ledger.sequence === tx.ledger_attr && ledger.successful_transaction_count >= 1, "ledger");
  });
  await check("ledger_header_xdr", async () => {
    const raw = Buffer.from(ledger.header_xdr, "base64");
    const header = asJson(xdr.LedgerHeader.fromXDR(raw));
    assert(header.ledger_seq === ledger.sequence, "sequence");
    assert(hex(sha256(raw)) === ledger.hash, "hash");
    assert(header.previous_ledger_hash === ledger.prev_hash, "prev hash");
    assert(String(header.fee_pool) === String(BigInt(Math.round(Number(ledger.fee_pool) * 1e7))), "fee pool");
  });
  for (const name of ["transactions", "operations", "payments", "effects"]) {
    await check(`ledger_link_${name}`, async () => {
      const page = await ledger[name]();
      assert(page.records.length > 0, "empty");
    });
  }
  await check("ledgers_page_desc", async () => {
    const page = await server.ledgers().order("desc").limit(1).call();
    assert(page.records.length === 1 && page.records[0].sequence >= tx.ledger_attr, "latest");
  });
  await check("paging_next_prev", async () => {
    const first = await server.operations().forAccount(alice.publicKey()).limit(1).call();
    const second = await first.next();
    const back = await second.prev();
    assert(first.records.length === 1 && second.records.length === 1, "pages");
    assert(BigInt(second.records[0].paging_token) > BigInt(first.records[0].paging_token), "next is later");
    assert(back.records[0].id === first.records[0].id, "prev returns");
  });
  await check("paging_cursor_order", async () => {
    const all = (await server.transactions().forAccount(alice.publicKey()).limit(200).call()).records;
    const after = (await server.transactions().forAccount(alice.publicKey()).cursor(all[0].paging_token).call()).records;
    const desc = (await server.transactions().forAccount(alice.publicKey()).order("desc").limit(200).call()).records;
    assert(after[0].id === all[1].id, "cursor");
    assert(desc.map((t) => t.id).join() === all.map((t) => t.id).reverse().join(), "desc");
  });
  await check("fee_stats", async () => {
    const stats = await server.feeStats();
    assert(stats.fee_charged.p50 && stats.last_ledger, "stats");
    assert(Number(await server.fetchBaseFee()) >= 100, "base fee");
  });

  await check("error_not_found", async () => {
    try {
      await server.transactions().transaction("0".repeat(64)).call();
    } catch (err) {
      assert(err instanceof StellarSdk.NotFoundError, err.name);
      return true;
    }
    return false;
  });
  await check("error_bad_request_cursor", async () => {
    try {
      await server.payments().cursor("not-a-cursor").call();
    } catch (err) {
      assert(err instanceof StellarSdk.NetworkError, err.name);
      assert(err.response?.status === 400 && err.response?.extras?.invalid_field === "cursor", "field");
      return true;
    }
    return false;
  });
  await check("error_transaction_failed", async () => {
    const bad = await build(alice, [
      Operation.payment({ destination: Keypair.random().publicKey(), asset: Asset.native(), amount: "1" }),
    ]);
    try {
      await server.submitTransaction(bad, { skipMemoRequiredCheck: true });
    } catch (err) {
      const extras = err.response?.data?.extras;
      assert(err.response.status === 400, "status");
      assert(extras.result_codes.operations[0] === "op_no_destination", JSON.stringify(extras.result_codes));
      xdr.TransactionResult.fromXDR(extras.result_xdr, "base64");
      return true;
    }
    return false;
  });
  await check("error_unsupported_media_type", async () => {
    const answer = await fetch(`${url}/transactions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tx: "AAAA" }),
    });
    const body = await answer.json();
    assert(answer.status === 415, `status ${answer.status}`);
    assert(answer.headers.get("content-type").startsWith("application/problem+json"), "content type");
    assert(body.type === "https://stellar.org/horizon-errors/unsupported_media_type", body.type);
  });
  let pending;
  await check("async_submit_pending", async () => {
    pending = await build(alice, [Operation.payment({ destination: bob.publicKey(), asset: tft, amount: "1" })]);
    const answer = await server.submitAsyncTransaction(pending, { skipMemoRequiredCheck: true });
    assert(answer.tx_status === "PENDING" && answer.hash === hex(pending.hash()), answer.tx_status);
  });
  await check("async_error_result_xdr", async () => {
    const account = await server.loadAccount(alice.publicKey());
    account.incrementSequenceNumber(); // skips one: tx_bad_seq
    account.incrementSequenceNumber();
    const tooFar = new TransactionBuilder(account, { fee: "1000", networkPassphrase: passphrase })
      .addOperation(Operation.payment({ destination: bob.publicKey(), asset: Asset.native(), amount: "1" }))
      .setTimeout(60)
      .build();
    tooFar.sign(alice);
    const answer = await fetch(`${url}/transactions_async`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `tx=${encodeURIComponent(tooFar.toXDR())}`,
    });
    const body = await answer.json();
    assert(answer.status === 400 && body.tx_status === "ERROR", `${answer.status} ${body.tx_status}`);
    assert(!("errorResultXdr" in body), "camel-case key");
    const result = asJson(xdr.TransactionResult.fromXDR(body.error_result_xdr, "base64"));
    assert(result.result === "tx_bad_seq", JSON.stringify(result.result));
  });
  await check("async_duplicate", async () => {
    const answer = await fetch(`${url}/transactions_async`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `tx=${encodeURIComponent(pending.toXDR())}`,
    });
    const body = await answer.json();
    assert(answer.status === 409 && body.tx_status === "DUPLICATE", `${answer.status} ${body.tx_status}`);
  });

  let events;
  await check("sse_preamble_and_ids", async () => {
    const { response, text } = await rawStream(`/accounts/${bob.publicKey()}/payments`);
    assert(response.headers.get("content-type").startsWith("text/event-stream"), "content type");
    assert(text.startsWith('retry: 1000\nevent: open\ndata: "hello"\n\n'), JSON.stringify(text.slice(0, 60)));
    events = sseEvents(text).filter((e) => e.id);
    assert(events.length >= 3, `events ${events.length}`);
    assert(events.every((e) => JSON.parse(e.data).paging_token === e.id), "id is the paging token");
  });
  await check("sse_last_event_id_resumes", async () => {
    const { text } = await rawStream(`/accounts/${bob.publicKey()}/payments`, { "Last-Event-ID": events[0].id });
    const resumed = sseEvents(text).filter((e) => e.id);
    assert(resumed.length === events.length - 1 && resumed[0].id === events[1].id, "resumed after the id");
  });

  const pay = (amount) => () => submit(alice, [
    Operation.payment({ destination: bob.publicKey(), asset: tft, amount }),
  ]);
  const streams = [
    ["stream_payments_for_account", () => server.payments().forAccount(bob.publicKey()), "0.0000101", "amount"],
    ["stream_payments_global", () => server.payments(), "0.0000102", "amount"],
    ["stream_transactions_for_account", () => server.transactions().forAccount(alice.publicKey()), "0.0000103", "tx"],
    ["stream_transactions_global", () => server.transactions(), "0.0000104", "tx"],
    ["stream_operations_for_account", () => server.operations().forAccount(bob.publicKey()), "0.0000105", "amount"],
    ["stream_operations_global", () => server.operations(), "0.0000106", "amount"],
  ];
  for (const [name, builder, amount, kind] of streams) {
    await check(name, async () => {
      let sent;
      const trigger = async () => {
        sent = await pay(amount)();
      };
      const wanted = kind === "amount"
        ? (m) => m.amount === amount
        : (m) => m.envelope_xdr && TransactionBuilder.fromXDR(m.envelope_xdr, passphrase).operations[0]?.amount === amount;
      // from the newest record now (not cursor=now: the stream may connect after the payment lands)
      const newest = (await builder().order("desc").limit(1).call()).records[0];
      const message = await streamUntil(builder().cursor(newest.paging_token), wanted, trigger);
      assert(message.paging_token, "paging token");
      assert(!sent || (message.transaction_hash ?? message.hash) === sent.hash, "the transaction sent");
    });
  }
  await check("stream_ledgers", async () => {
    const latest = (await server.ledgers().order("desc").limit(1).call()).records[0].sequence;
    const message = await streamUntil(server.ledgers().cursor("now"), (m) => m.sequence > latest, async () => {});
    assert(message.header_xdr, "header");
  });
}

main()
  .catch((err) => record("root_horizon_version", false, `setup failed: ${err}`))
  .finally(() => {
    for (const name of CHECKS) {
      const result = results.get(name) ?? { check: name, ok: false, detail: "not run" };
      console.log(JSON.stringify(result));
    }
    process.exit(0);
  });
