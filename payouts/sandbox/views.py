"""Horizon's JSON shapes for the sandbox's records (protocols/horizon in stellar/go).

Amounts leave the model as integers and become 7-decimal strings only here.
"""

from __future__ import annotations

import base64

from payouts.sandbox.chain import Chain
from payouts.sandbox.entries import Account, LedgerHeader, OpRecord, TxRecord, format_amount, rfc3339
from payouts.sandbox.network import BASE_RESERVE_STROOPS, PROTOCOL_VERSION, TOTAL_COINS_STROOPS
from payouts.sandbox.xdr_fields import header_xdr

#: Horizon's release line this sandbox answers like; the suffix says it is the sandbox.
HORIZON_VERSION = "22.0.0-tft-payouts-sandbox"

HORIZON_ERRORS = "https://stellar.org/horizon-errors/"


def problem(status: int, slug: str, title: str, detail: str, extras: dict | None = None) -> dict:
    document = {"type": HORIZON_ERRORS + slug, "title": title, "status": status, "detail": detail}
    if extras:
        document["extras"] = extras
    return document


NOT_FOUND_DETAIL = (
    "The resource at the url requested was not found.  This usually occurs for one of two "
    "reasons:  The url requested is not valid, or no data in our database could be found with "
    "the parameters provided."
)
TX_FAILED_DETAIL = (
    "The transaction failed when submitted to the stellar network. The `extras.result_codes` "
    "field on this response contains further details.  Descriptions of each code can be found "
    "at: https://developers.stellar.org/docs/data/apis/horizon/api-reference/errors/"
    "http-status-codes/horizon-specific/transaction-failed"
)
TIMEOUT_DETAIL = (
    "Your transaction submission request has timed out. This does not necessarily mean the "
    "submission has failed. Before resubmitting, please use the transaction hash provided in "
    "`extras.hash` to poll the GET /transactions endpoint for sometime and check if it was "
    "included in a ledger."
)
MALFORMED_DETAIL = (
    "Horizon could not decode the transaction envelope in this request. A transaction should be "
    "an XDR TransactionEnvelope struct encoded using base64.  The envelope read from this "
    "request is echoed in the `extras.envelope_xdr` field of this response for your convenience."
)


def not_found() -> dict:
    return problem(404, "not_found", "Resource Missing", NOT_FOUND_DETAIL)


def bad_request(field: str, reason: str) -> dict:
    return problem(
        400,
        "bad_request",
        "Bad Request",
        "The request you sent was invalid in some way.",
        {"invalid_field": field, "reason": reason},
    )


def transaction_failed(envelope_xdr: str, result_xdr: str, codes: dict) -> dict:
    return problem(
        400,
        "transaction_failed",
        "Transaction Failed",
        TX_FAILED_DETAIL,
        {"envelope_xdr": envelope_xdr, "result_xdr": result_xdr, "result_codes": codes},
    )


def transaction_malformed(envelope_xdr: str) -> dict:
    return problem(
        400, "transaction_malformed", "Transaction Malformed", MALFORMED_DETAIL, {"envelope_xdr": envelope_xdr}
    )


def submission_timeout(hash_hex: str, envelope_xdr: str) -> dict:
    return problem(
        504,
        "transaction_submission_timeout",
        "Transaction Submission Timeout",
        TIMEOUT_DETAIL,
        {"hash": hash_hex, "envelope_xdr": envelope_xdr},
    )


UNSUPPORTED_MEDIA_DETAIL = (
    "The request has an unsupported content type. Presently, the only supported content type is "
    "application/x-www-form-urlencoded."
)


def unsupported_media_type() -> dict:
    return problem(415, "unsupported_media_type", "Unsupported Media Type", UNSUPPORTED_MEDIA_DETAIL)


#: Horizon's root links: (name, path template)
ROOT_LINKS = (
    ("account", "/accounts/{account_id}"),
    ("accounts", "/accounts{?signer,sponsor,asset,liquidity_pool,cursor,limit,order}"),
    ("account_transactions", "/accounts/{account_id}/transactions{?cursor,limit,order}"),
    ("claimable_balances", "/claimable_balances{?asset,sponsor,claimant,cursor,limit,order}"),
    ("assets", "/assets{?asset_code,asset_issuer,cursor,limit,order}"),
    ("effects", "/effects{?cursor,limit,order}"),
    ("fee_stats", "/fee_stats"),
    ("friendbot", "/friendbot{?addr}"),
    ("ledger", "/ledgers/{sequence}"),
    ("ledgers", "/ledgers{?cursor,limit,order}"),
    ("liquidity_pools", "/liquidity_pools{?reserves,account,cursor,limit,order}"),
    ("offer", "/offers/{offer_id}"),
    ("offers", "/offers{?selling,buying,seller,sponsor,cursor,limit,order}"),
    ("operation", "/operations/{id}"),
    ("operations", "/operations{?cursor,limit,order,include_failed}"),
    (
        "order_book",
        (
            "/order_book{?selling_asset_type,selling_asset_code,selling_asset_issuer,"
            "buying_asset_type,buying_asset_code,buying_asset_issuer,limit}"
        ),
    ),
    ("payments", "/payments{?cursor,limit,order,include_failed}"),
    ("self", "/"),
    (
        "strict_receive_paths",
        (
            "/paths/strict-receive{?source_assets,source_account,destination_account,"
            "destination_asset_type,destination_asset_issuer,destination_asset_code,destination_amount}"
        ),
    ),
    (
        "strict_send_paths",
        (
            "/paths/strict-send{?destination_account,destination_assets,source_asset_type,"
            "source_asset_issuer,source_asset_code,source_amount}"
        ),
    ),
    (
        "trade_aggregations",
        (
            "/trade_aggregations?base_asset_type={base_asset_type}&base_asset_code={base_asset_code}"
            "&base_asset_issuer={base_asset_issuer}&counter_asset_type={counter_asset_type}"
            "&counter_asset_code={counter_asset_code}&counter_asset_issuer={counter_asset_issuer}"
        ),
    ),
    (
        "trades",
        (
            "/trades?base_asset_type={base_asset_type}&base_asset_code={base_asset_code}"
            "&base_asset_issuer={base_asset_issuer}&counter_asset_type={counter_asset_type}"
            "&counter_asset_code={counter_asset_code}&counter_asset_issuer={counter_asset_issuer}"
        ),
    ),
    ("transaction", "/transactions/{hash}"),
    ("transactions", "/transactions{?cursor,limit,order}"),
)


def root(base: str, ledger: Chain, latest: LedgerHeader, elder: int | None = None) -> dict:
    links: dict[str, dict] = {}
    for name, template in ROOT_LINKS:
        links[name] = {"href": f"{base}{template}"}
        if "{" in template:
            links[name]["templated"] = True
    return {
        "_links": links,
        "horizon_version": HORIZON_VERSION,
        "core_version": "tft-payouts-sandbox",
        "ingest_latest_ledger": latest.sequence,
        "history_latest_ledger": latest.sequence,
        "history_latest_ledger_closed_at": rfc3339(latest.closed_at_s),
        "history_elder_ledger": ledger.headers[0].sequence if elder is None else elder,
        "core_latest_ledger": ledger.latest.sequence,
        "network_passphrase": ledger.network_passphrase,
        "current_protocol_version": PROTOCOL_VERSION,
        "supported_protocol_version": PROTOCOL_VERSION,
        "core_supported_protocol_version": PROTOCOL_VERSION,
    }


def account(base: str, entry: Account) -> dict:
    account_id = entry.account_id
    balances = []
    for line in entry.trustlines.values():
        balances.append(
            {
                "balance": format_amount(line.balance_units),
                "limit": format_amount(line.limit_units),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "last_modified_ledger": line.last_modified_ledger,
                "is_authorized": bool(line.flags & 1),
                "is_authorized_to_maintain_liabilities": bool(line.flags & 3),
                "is_clawback_enabled": bool(line.flags & 4),
                "asset_type": "credit_alphanum4" if len(line.asset_code) <= 4 else "credit_alphanum12",
                "asset_code": line.asset_code,
                "asset_issuer": line.asset_issuer,
            }
        )
    balances.append(
        {
            "balance": format_amount(entry.balance_stroops),
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
            "asset_type": "native",
        }
    )
    signers = [
        {"weight": weight, "key": key, "type": "ed25519_public_key"} for key, weight in sorted(entry.signers.items())
    ]
    signers.append({"weight": entry.master_weight, "key": account_id, "type": "ed25519_public_key"})
    links = {
        name: {"href": f"{base}/accounts/{account_id}/{name}{{?cursor,limit,order}}", "templated": True}
        for name in ("transactions", "operations", "payments", "effects", "offers", "trades")
    }
    links["self"] = {"href": f"{base}/accounts/{account_id}"}
    links["data"] = {"href": f"{base}/accounts/{account_id}/data/{{key}}", "templated": True}
    document = {
        "_links": links,
        "id": account_id,
        "account_id": account_id,
        "sequence": str(entry.seq_num),
        "subentry_count": entry.num_subentries,
        "last_modified_ledger": entry.last_modified_ledger,
        "last_modified_time": rfc3339(entry.last_modified_time_s),
        "thresholds": {
            "low_threshold": entry.low_threshold,
            "med_threshold": entry.med_threshold,
            "high_threshold": entry.high_threshold,
        },
        "flags": {
            "auth_required": bool(entry.flags & 1),
            "auth_revocable": bool(entry.flags & 2),
            "auth_immutable": bool(entry.flags & 4),
            "auth_clawback_enabled": bool(entry.flags & 8),
        },
        "balances": balances,
        "signers": signers,
        "data": {name: base64.b64encode(value).decode() for name, value in sorted(entry.data.items())},
        "num_sponsoring": entry.num_sponsoring,
        "num_sponsored": 0,
        "paging_token": account_id,
    }
    if entry.seq_ledger:
        document["sequence_ledger"] = entry.seq_ledger
        document["sequence_time"] = str(entry.seq_time_s)
    if entry.home_domain:
        document["home_domain"] = entry.home_domain
    return document


def data_entry(value: bytes) -> dict:
    """GET /accounts/{id}/data/{key}: the value, base64 (Horizon's AccountData)."""
    return {"value": base64.b64encode(value).decode()}


def transaction(base: str, record: TxRecord) -> dict:
    hash_hex = record.hash_hex
    token = record.paging_token
    doc = {key: value for key, value in record.doc.items() if not key.startswith("_")}
    return {
        "_links": {
            "self": {"href": f"{base}/transactions/{hash_hex}"},
            "account": {"href": f"{base}/accounts/{record.doc['source_account']}"},
            "ledger": {"href": f"{base}/ledgers/{record.ledger_seq}"},
            "operations": {
                "href": f"{base}/transactions/{hash_hex}/operations{{?cursor,limit,order}}",
                "templated": True,
            },
            "effects": {"href": f"{base}/transactions/{hash_hex}/effects{{?cursor,limit,order}}", "templated": True},
            "precedes": {"href": f"{base}/transactions?order=asc&cursor={token}"},
            "succeeds": {"href": f"{base}/transactions?order=desc&cursor={token}"},
            "transaction": {"href": f"{base}/transactions/{hash_hex}"},
        },
        "id": hash_hex,
        "paging_token": str(token),
        "successful": record.successful,
        "hash": hash_hex,
        "ledger": record.ledger_seq,
        "created_at": rfc3339(record.closed_at_s),
        **doc,
    }


def effect(base: str, op: OpRecord, index: int, fields: dict) -> dict:
    """An effect as Horizon renders it: id `%019d-%010d`, paging token `TOID-index`."""
    token = f"{op.toid}-{index}"
    return {
        "_links": {
            "operation": {"href": f"{base}/operations/{op.toid}"},
            "succeeds": {"href": f"{base}/effects?order=desc&cursor={token}"},
            "precedes": {"href": f"{base}/effects?order=asc&cursor={token}"},
        },
        "id": f"{op.toid:019d}-{index:010d}",
        "paging_token": token,
        "account": fields["account"],
        "type": fields["type"],
        "type_i": fields["type_i"],
        "created_at": rfc3339(op.closed_at_s),
        **{k: v for k, v in fields.items() if k not in ("account", "type", "type_i")},
    }


def operation(base: str, record: OpRecord) -> dict:
    op_id = str(record.toid)
    return {
        "_links": {
            "self": {"href": f"{base}/operations/{op_id}"},
            "transaction": {"href": f"{base}/transactions/{record.tx_hash_hex}"},
            "effects": {"href": f"{base}/operations/{op_id}/effects"},
            "succeeds": {"href": f"{base}/effects?order=desc&cursor={op_id}"},
            "precedes": {"href": f"{base}/effects?order=asc&cursor={op_id}"},
        },
        "id": op_id,
        "paging_token": op_id,
        "transaction_successful": record.successful,
        "source_account": record.doc["source_account"],
        "type": record.doc["type"],
        "type_i": record.doc["type_i"],
        "created_at": rfc3339(record.closed_at_s),
        "transaction_hash": record.tx_hash_hex,
        **{k: v for k, v in record.doc.items() if k not in ("source_account", "type", "type_i")},
    }


def ledger_record(base: str, header: LedgerHeader) -> dict:
    token = str(header.sequence << 32)
    return {
        "_links": {
            "self": {"href": f"{base}/ledgers/{header.sequence}"},
            **{
                name: {"href": f"{base}/ledgers/{header.sequence}/{name}{{?cursor,limit,order}}", "templated": True}
                for name in ("transactions", "operations", "payments", "effects")
            },
        },
        "id": header.hash_hex,
        "paging_token": token,
        "hash": header.hash_hex,
        "prev_hash": header.prev_hash_hex,
        "sequence": header.sequence,
        "successful_transaction_count": header.successful_tx_count,
        "failed_transaction_count": header.failed_tx_count,
        "operation_count": header.operation_count,
        "tx_set_operation_count": header.tx_set_operation_count,
        "closed_at": rfc3339(header.closed_at_s),
        "total_coins": format_amount(TOTAL_COINS_STROOPS),
        "fee_pool": format_amount(header.fee_pool_stroops),
        "base_fee_in_stroops": header.base_fee_stroops,
        "base_reserve_in_stroops": BASE_RESERVE_STROOPS,
        "max_tx_set_size": header.max_ops,
        "protocol_version": PROTOCOL_VERSION,
        "header_xdr": header_xdr(header),
    }


def page(self_href: str, next_href: str, prev_href: str, records: list[dict]) -> dict:
    return {
        "_links": {"self": {"href": self_href}, "next": {"href": next_href}, "prev": {"href": prev_href}},
        "_embedded": {"records": records},
    }


def fee_stats(ledger: Chain, last_ledgers: int = 5) -> dict:
    """Per-operation fees over the last few ledgers, as Horizon's /fee_stats reports them."""
    headers = ledger.headers[-last_ledgers:]
    wanted = {h.sequence for h in headers}
    charged: list[int] = []
    bids: list[int] = []
    for hash_hex in reversed(ledger.tx_order):
        record = ledger.transactions[hash_hex]
        if record.ledger_seq not in wanted:
            break
        ops = record.doc["operation_count"] + (1 if "inner_transaction" in record.doc else 0)
        charged.append(int(record.doc["fee_charged"]) // ops)
        bids.append(int(record.doc["max_fee"]) // ops)
    floor = max(ledger.min_fee_per_op(), ledger.latest.base_fee_stroops)
    latest = ledger.latest
    usage = latest.tx_set_operation_count / latest.max_ops if latest.max_ops else 0.0
    return {
        "last_ledger": str(latest.sequence),
        "last_ledger_base_fee": str(latest.base_fee_stroops),
        "ledger_capacity_usage": f"{usage:.2f}",
        "fee_charged": _distribution(charged or [floor]),
        "max_fee": _distribution(bids or [floor]),
    }


def _distribution(values: list[int]) -> dict:
    values = sorted(values)
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    result = {"max": str(values[-1]), "min": str(values[0]), "mode": str(max(counts, key=lambda v: (counts[v], -v)))}
    for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99):
        index = min(len(values) - 1, max(0, (p * len(values) + 99) // 100 - 1))
        result[f"p{p}"] = str(values[index])
    return result
