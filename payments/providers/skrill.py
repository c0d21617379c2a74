"""Skrill (Paysafe digital wallets): Quick Checkout, the status_url callback, the Automated
Payments Interface (Send Money, Refunds) and the Merchant Query Interface, as Skrill publishes
them in the *Skrill Quick Checkout Integration Guide* (8.x) and the *Automated Payments and
Merchant Query Interfaces Guide* (2.x), now served at
https://docs.paysafe.com/docs/digital-wallets/quick-checkout/introduction and
https://docs.paysafe.com/docs/digital-wallets/api-mqi/mqi.

- Deposits: `POST <checkout base>` with `prepare_only=1` answers a session id (SID) as plain
  text; the player goes to `<checkout base>?sid=<SID>`. The checkout base
  (`https://pay.skrill.com/`) is not the API base (`https://www.skrill.com/app/`, kept in
  `api_base_url`): `provider.options["checkout_base_url"]`, resolved against `api_base_url`
  when relative (the sandbox serves both under one base).
- Skrill posts the outcome to our `status_url`, form-encoded, signed by `md5sig` (and
  `sha2sig` when Skrill enabled it for the merchant): UPPERCASE MD5 / SHA-256 of
  merchant_id + transaction_id + UPPERCASE(MD5(secret word)) + mb_amount + mb_currency +
  status (Quick Checkout guide, appendix "MD5 signature"). Statuses: 2 processed, 0 pending,
  -1 cancelled, -2 failed, -3 chargeback.
- Payouts: Send Money, `pay.pl` `action=prepare` (XML `<sid>`) then `action=transfer` (XML
  `<transaction>` with status 2 processed / 1 scheduled / -2 failed). Send Money has no status
  callback: a scheduled payout is polled (`query.pl` `status_trn`, `trn_id` = our
  `frn_trn_id`).
- Refunds: `refund.pl` `action=prepare` (XML `<sid>`) then `action=refund` (XML status 2 / 0
  / -2), with callbacks to `refund_status_url`.
- Status polling: `query.pl` `action=status_trn` answers `200\\t\\tOK` and a second line with
  the status report URL-encoded, or `403\\t\\tTransaction not found: …`.
- API and MQI calls authenticate with the merchant's e-mail and the lower-case hex MD5 of the
  API/MQI password; their HTTP status is 200 even for errors (the error is in the body).

What a callback proves, and what we do with the rest. The signature covers merchant_id,
transaction_id, mb_amount, mb_currency and status only. Everything else Skrill posts
(mb_transaction_id, pay_from_email, amount, currency, payment_type, merchant fields) could
have been changed by whoever relays a genuine callback, so:
- identity and deduplication use the signed `transaction_id` (our deposit reference) and
  `status`: one event per `<transaction_id>:<status>`; the deposit is never looked up by
  mb_transaction_id;
- a callback that moves money (2 processed, -3 chargeback) is confirmed with `status_trn`
  before it is applied: Skrill's own record must have the signed mb_amount and mb_currency,
  and that record (not the callback) gives the amount in the payment's currency — when Skrill
  settled into another currency of the merchant's account, `mb_amount` is in that currency
  and `amount` in the payment's — the Skrill transaction id and the payer's account;
- a chargeback (-3) is one dispute per payment, `<transaction_id>:chargeback`, whatever
  mb_transaction_id says, so a resent -3 can never be booked twice;
- `pay_from_email` of a callback that moves no money (0, -1, -2) is taken as it comes: it
  only groups players for review (`PayerInstrument`), never decides anything;
- refund callbacks name the refunded payment in `transaction_id`; which of our refunds they
  are about travels in a merchant field (`refund_reference`) we ask Skrill to echo, and the
  refund's Skrill id is confirmed with `status_trn` (it must be a transaction of the same
  signed payment, with the signed amount) and is what deduplicates them.

Skrill sends no chargeback reversal and no expiry: a chargeback won back is booked by an
operator (or reconciliation), and an unpaid session simply never calls back (the janitor
expires it; a pending payment Skrill cancels after 14 days arrives as -1). Quick Checkout
payments cannot be cancelled by the merchant (`supports_cancel = False`).

Decline codes (`failed_reason_code`, sent with status -2 once Skrill support enabled it): the
table is Appendix H "Failed Reason Codes" of the Quick Checkout guide,
https://docs.paysafe.com/docs/digital-wallets/quick-checkout/error-codes . Soft are the codes
where the same payer may succeed later or after correcting an input (insufficient funds,
limits, issuer or network unavailable, system errors, a failed 3-D Secure or CVV, a mistyped
PIN); everything else — lost or stolen or blocked cards, fraud rules, closed accounts,
invalid merchant or request — is hard, as is any code not in the table. Send Money and refund
errors (`<error_msg>`, Appendix B "Error Messages" of the API guide,
https://docs.paysafe.com/docs/digital-wallets/api-mqi/error-messages) are sorted the same
way: a merchant balance too low or an expired session is soft, the rest hard.
"""

import hashlib
import re
import xml.etree.ElementTree as ElementTree
from decimal import Decimal
from urllib.parse import parse_qsl, urljoin

from .base import (
    CANCELLED,
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    DisputeInfo,
    InvalidSignature,
    MalformedWebhook,
    PayerInstrument,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    WebhookAck,
    money,
    parse_decimal,
    signatures_match,
)

# status_url / status_trn statuses.
PROCESSED = "2"
SCHEDULED = "1"  # Send Money only
WAITING = "0"
CANCELLED_BY_SKRILL = "-1"
FAILED_AT_SKRILL = "-2"
CHARGEBACK = "-3"

STATUS_NAMES = {
    PROCESSED: "processed",
    SCHEDULED: "scheduled",
    WAITING: "pending",
    CANCELLED_BY_SKRILL: "cancelled",
    FAILED_AT_SKRILL: "failed",
    CHARGEBACK: "chargeback",
}

# Appendix H, the codes worth retrying (see the module docstring for the rule).
SOFT_FAILED_REASON_CODES = frozenset(
    {
        "01",  # Referred by Card Issuer
        "04",  # Declined by Card Issuer (generic, like do_not_honor)
        "05",  # Insufficient funds
        "07",  # Incorrect PIN
        "10",  # Transaction frequency limit exceeded
        "11",  # Invalid amount / amount too high or too low / limit exceeded
        "31",  # Limit exceeded with provider
        "32",  # Card Security Code (CVV2/CVC2) check failed
        "44",  # Card issuing bank or network is not available
        "51",  # System error
        "67",  # BitPay session expired
        "68",  # Referenced transaction has not been settled
        "70",  # Customer failed 3DS verification
        "98",  # Error in communication with provider
    }
)
# Appendix B of the API guide: errors of Send Money and refunds worth retrying.
SOFT_API_ERRORS = frozenset({"BALANCE_NOT_ENOUGH", "SESSION_EXPIRED", "EXECUTION_PENDING"})
# API errors that mean our credentials or account setup are wrong: the request was refused
# before anything was done, like an unreachable provider.
LOGIN_ERRORS = frozenset(
    {"CANNOT_LOGIN", "LOGIN_INVALID", "PAYMENT_DENIED", "NO_LOGIN_EXPLANATION"}
)

DEFAULT_CHECKOUT_BASE_URL = "https://pay.skrill.com/"
SIGNED_FIELDS = ("merchant_id", "transaction_id", "mb_amount", "mb_currency", "status")
# The merchant field our refund requests ask Skrill to post back to refund_status_url.
REFUND_REFERENCE_FIELD = "refund_reference"
# The merchant field carrying the casino's player id on checkout (echoed, never trusted).
PLAYER_FIELD = "player_id"

_SID = re.compile(r"[A-Za-z0-9]{16,64}")
_MQI_STATUS_LINE = re.compile(r"(\d{3})\s+(.*)")


def secret_word_digest(secret_word: str) -> str:
    """UPPERCASE(MD5(secret word)), the middle of every Skrill signature."""
    # MD5 is Skrill's protocol, not our choice.
    return hashlib.md5(secret_word.encode()).hexdigest().upper()  # noqa: S324


def signed_string(fields: dict, secret_word: str) -> str:
    return (
        fields["merchant_id"]
        + fields["transaction_id"]
        + secret_word_digest(secret_word)
        + fields["mb_amount"]
        + fields["mb_currency"]
        + fields["status"]
    )


def md5sig(fields: dict, secret_word: str) -> str:
    return hashlib.md5(signed_string(fields, secret_word).encode()).hexdigest().upper()  # noqa: S324


def sha2sig(fields: dict, secret_word: str) -> str:
    return hashlib.sha256(signed_string(fields, secret_word).encode()).hexdigest().upper()


def form_fields(body: bytes) -> dict[str, str]:
    """A form-encoded body as a dict. A field given twice is refused: which of the two Skrill
    signed would be a guess."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedWebhook(f"not a form-encoded body: {exc}") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise MalformedWebhook(f"field {name!r} given twice")
        fields[name] = value
    return fields


class SkrillConnector(PaymentAdapter):
    """`provider.options`:
    - `merchant_email` (required): the Skrill account's e-mail — `pay_to_email` of the
      checkout, `email` of API and MQI calls;
    - `checkout_base_url`: where Quick Checkout lives, default `https://pay.skrill.com/`;
      relative values are resolved against `api_base_url` (the sandbox uses `pay/`);
    - `sha2sig_enabled`: Skrill enabled `sha2sig` for this merchant, so a callback without it
      is refused (with it absent, a `sha2sig` that is present is still checked);
    - `language`: Quick Checkout language, default `EN`;
    - `refund_note`: text Skrill e-mails the player with a refund (default none).

    `merchant_id` is the numeric Skrill customer id of the merchant, `webhook_secret` the
    secret word (Settings > Developer Settings), `api_key` the API/MQI password (sent as its
    MD5, as Skrill asks)."""

    protocol = "skrill"
    webhook_content_types = ("application/x-www-form-urlencoded",)
    soft_declines = SOFT_FAILED_REASON_CODES | SOFT_API_ERRORS
    supports_payouts = True
    # A Quick Checkout payment cannot be cancelled by the merchant: the player abandons it
    # (no callback) or Skrill cancels a pending one after 14 days (-1).
    supports_cancel = False

    # --- helpers ---------------------------------------------------------------------------

    @property
    def merchant_email(self) -> str:
        email = (self.provider.options or {}).get("merchant_email", "")
        if not email:
            raise ProviderUnavailable(
                f"{self.provider.code}: provider.options['merchant_email'] is not set.",
                provider=self.provider.code,
            )
        return email

    @property
    def checkout_base_url(self) -> str:
        configured = (self.provider.options or {}).get("checkout_base_url") or (
            DEFAULT_CHECKOUT_BASE_URL
        )
        base = urljoin(self.provider.api_base_url, configured)
        return base if base.endswith("/") else base + "/"

    def _credentials(self) -> dict:
        # Skrill wants the lower-case hex MD5 of the API/MQI password, never the password.
        password = hashlib.md5(self.api_key.encode()).hexdigest()  # noqa: S324
        return {"email": self.merchant_email, "password": password}

    def _unavailable(self, message: str, **details) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{self.provider.code}: {message}", provider=self.provider.code, **details
        )

    def _api(self, path: str, fields: dict) -> ElementTree.Element:
        """One call of the Automated Payments Interface: form in, XML `<response>` out."""
        response = self._request("POST", path, data={**self._credentials(), **fields})
        if response.status_code != 200:
            raise self._unavailable(f"{path} answered HTTP {response.status_code}.")
        text = response.text
        # The answer is ours to read, never to expand: no DTDs, no entities.
        if "<!DOCTYPE" in text or "<!ENTITY" in text:
            raise self._unavailable(f"{path} answered XML with a DTD.")
        try:
            # Safe without defusedxml: DTDs are refused above, so there is nothing to expand,
            # and ElementTree never fetches external resources.
            root = ElementTree.fromstring(text)  # noqa: S314
        except ElementTree.ParseError:
            # Something answered, but not Skrill's XML: the outcome is unknown.
            raise ProviderTimeout(
                f"{self.provider.code}: {path} answered something that is not XML.",
                provider=self.provider.code,
            ) from None
        if root.tag != "response":
            raise ProviderTimeout(
                f"{self.provider.code}: {path} answered <{root.tag}>, not <response>.",
                provider=self.provider.code,
            )
        return root

    @staticmethod
    def _error(root: ElementTree.Element) -> str:
        return (root.findtext("error/error_msg") or "").strip()

    def _api_failure(self, path: str, error: str, *, already_done_means_pending: bool):
        """An `<error>` answer as a result, or raised when it says nothing was done."""
        if error in LOGIN_ERRORS:
            raise self._unavailable(f"{path} refused our credentials ({error}).", error=error)
        if already_done_means_pending and error in ("ALREADY_EXECUTED", "EXECUTION_PENDING"):
            # Our reference was executed (or is executing) already: the outcome is Skrill's
            # record, found by polling — never a failure that would release the money.
            return ProviderResult(status=PENDING)
        return ProviderResult(
            status=FAILED, decline_code=error, decline_kind=self.decline_kind(error)
        )

    def _session(self, path: str, fields: dict, *, already_done_means_pending=False):
        """The prepare step: a session id, or the result its error means."""
        root = self._api(path, {"action": "prepare", **fields})
        error = self._error(root)
        if error:
            return None, self._api_failure(
                path, error, already_done_means_pending=already_done_means_pending
            )
        sid = (root.findtext("sid") or "").strip()
        if not _SID.fullmatch(sid):
            raise self._unavailable(f"{path} prepare answered no session id.")
        return sid, None

    def _query(self, *, trn_id: str = "", mb_trn_id: str = "") -> dict | None:
        """`status_trn`: Skrill's status report of one transaction, None if Skrill has none.

        Raises ProviderUnavailable / ProviderTimeout when the answer is not one we can trust
        (never MalformedWebhook: the janitor calls this too)."""
        fields = {"action": "status_trn"}
        if trn_id:
            fields["trn_id"] = trn_id
        else:
            fields["mb_trn_id"] = mb_trn_id
        response = self._request("POST", "query.pl", data={**self._credentials(), **fields})
        if response.status_code != 200:
            raise self._unavailable(f"query.pl answered HTTP {response.status_code}.")
        first, _, rest = response.text.partition("\n")
        match = _MQI_STATUS_LINE.fullmatch(first.strip())
        if match is None:
            raise ProviderTimeout(
                f"{self.provider.code}: query.pl answered no status line.",
                provider=self.provider.code,
            )
        code, message = match.groups()
        if code == "403" and "not found" in message.lower():
            return None
        if code != "200":
            raise self._unavailable(f"query.pl answered {code} {message.strip()}.", mqi=code)
        try:
            record = form_fields(rest.strip().encode())
        except MalformedWebhook as exc:
            raise self._unavailable(f"query.pl answered an unreadable record: {exc}") from None
        if any(not record.get(name) for name in SIGNED_FIELDS):
            raise self._unavailable("query.pl answered a record without its signed fields.")
        # The record carries the same signature as a callback: check it, so a record that was
        # altered on its way is never believed.
        if "md5sig" in record and not signatures_match(
            md5sig(record, self.webhook_secret), record["md5sig"]
        ):
            raise self._unavailable("query.pl answered a record whose md5sig does not match.")
        if record["merchant_id"] != self.provider.merchant_id:
            raise self._unavailable("query.pl answered a record of another merchant.")
        return record

    def _payment_result(self, record: dict, *, is_confirmed: bool = True) -> ProviderResult:
        """A deposit as Skrill's record (status_trn) says it is, or as an unconfirmed callback
        says (`is_confirmed=False`: its Skrill id is then not kept, it is unsigned)."""
        status = record["status"]
        payer = PayerInstrument.of("ewallet", record.get("pay_from_email"))
        skrill_id = record.get("mb_transaction_id", "") if is_confirmed else ""
        if status in (PROCESSED, CHARGEBACK):
            # A charged-back payment was processed first: for the deposit that is success; the
            # chargeback itself comes as its own event.
            return ProviderResult(
                status=SUCCEEDED,
                provider_reference=skrill_id,
                amount_received=self._amount_in_payment_currency(record),
                payer_instrument=payer,
                payer_name=_payer_name(record),
            )
        if status == FAILED_AT_SKRILL:
            code = record.get("failed_reason_code", "")
            return ProviderResult(
                status=FAILED,
                provider_reference=skrill_id,
                decline_code=code,
                decline_kind=self.decline_kind(code) if code else "hard",
                payer_instrument=payer,
            )
        if status == CANCELLED_BY_SKRILL:
            return ProviderResult(status=CANCELLED, payer_instrument=payer)
        return ProviderResult(status=PENDING, payer_instrument=payer)

    @staticmethod
    def _amount_in_payment_currency(record: dict) -> Decimal:
        """What the payer paid, in the currency we asked for. `mb_amount` is in the merchant
        account's currency; when Skrill converted (mb_currency is not the payment's currency)
        the payment-currency amount is `amount`."""
        try:
            mb_amount = parse_decimal(record["mb_amount"])
            if record.get("currency") in ("", None) or record["currency"] == record["mb_currency"]:
                return mb_amount
            return parse_decimal(record.get("amount"))
        except MalformedWebhook as exc:
            raise ProviderUnavailable(f"status_trn answered a record with {exc}") from None

    # --- outgoing calls --------------------------------------------------------------------

    def start_payment(
        self, *, deposit, notify_url: str, return_url: str, payment_method: dict | None = None
    ) -> ProviderResult:
        player = deposit.player
        form = {
            "pay_to_email": self.merchant_email,
            "transaction_id": deposit.reference,
            "amount": money(deposit.amount, deposit.currency_id),
            "currency": deposit.currency_id,
            "status_url": notify_url,
            "return_url": return_url,
            "cancel_url": return_url,
            "language": (self.provider.options or {}).get("language", "EN"),
            "prepare_only": "1",
            # Echoed back to status_url; never trusted, only shown.
            "merchant_fields": PLAYER_FIELD,
            PLAYER_FIELD: player.external_id,
        }
        # Customer fields pre-fill Skrill's login and registration forms.
        if player.email:
            form["pay_from_email"] = player.email
        if player.first_name:
            form["firstname"] = player.first_name
        if player.last_name:
            form["lastname"] = player.last_name
        if player.date_of_birth:
            form["date_of_birth"] = player.date_of_birth.strftime("%d%m%Y")
        checkout = self.checkout_base_url
        response = self._request("POST", "", base_url=checkout, data=form)
        if 400 <= response.status_code < 500:
            # Skrill refused to open the session (unknown pay_to_email, bad amount or
            # currency): nothing exists that the player could pay.
            code = _json_error_code(response) or f"HTTP_{response.status_code}"
            return ProviderResult(
                status=FAILED, decline_code=code, decline_kind=self.decline_kind(code)
            )
        sid = response.text.strip()
        if response.status_code != 200 or not _SID.fullmatch(sid):
            raise self._unavailable("Quick Checkout answered no session id.")
        return ProviderResult(status=PENDING, redirect_url=f"{checkout}?sid={sid}")

    def start_payout(self, *, withdrawal, notify_url: str) -> ProviderResult:
        """Send Money to the player's Skrill account. Skrill has no callback for it: a
        scheduled transfer is polled (`fetch_payout_status`)."""
        currency = withdrawal.currency_id
        sid, failure = self._session(
            "pay.pl",
            {
                "amount": money(withdrawal.amount, currency),
                "currency": currency,
                "bnf_email": withdrawal.instrument.identifier,
                "subject": (self.provider.options or {}).get("payout_subject", "Your withdrawal"),
                "note": f"Withdrawal {withdrawal.reference}",
                # Skrill refuses a second transfer with the same frn_trn_id: our reference is
                # the idempotency key.
                "frn_trn_id": withdrawal.reference,
            },
            already_done_means_pending=True,
        )
        if failure is not None:
            return failure
        root = self._api("pay.pl", {"action": "transfer", "sid": sid})
        error = self._error(root)
        if error:
            return self._api_failure("pay.pl", error, already_done_means_pending=True)
        transaction = root.find("transaction")
        if transaction is None:
            raise ProviderTimeout(
                f"{self.provider.code}: transfer answered no transaction.",
                provider=self.provider.code,
            )
        return self._transfer_result(
            status=(transaction.findtext("status") or "").strip(),
            skrill_id=(transaction.findtext("id") or "").strip(),
            message=(transaction.findtext("status_msg") or "").strip(),
        )

    def _transfer_result(self, *, status: str, skrill_id: str, message: str = "") -> ProviderResult:
        if status == PROCESSED:
            return ProviderResult(status=SUCCEEDED, provider_reference=skrill_id)
        if status == FAILED_AT_SKRILL:
            code = message or "failed"
            return ProviderResult(
                status=FAILED, provider_reference=skrill_id, decline_code=code, decline_kind="hard"
            )
        if status == CANCELLED_BY_SKRILL:
            return ProviderResult(status=CANCELLED, provider_reference=skrill_id)
        return ProviderResult(status=PENDING, provider_reference=skrill_id)

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        deposit = refund.deposit
        fields = {
            # Our deposit reference names the payment; mb_transaction_id is not needed.
            "transaction_id": deposit.reference,
            "amount": money(refund.amount, deposit.currency_id),
            "refund_status_url": notify_url,
            # Skrill posts these back with the refund's status (unsigned: routing only).
            "merchant_fields": REFUND_REFERENCE_FIELD,
            REFUND_REFERENCE_FIELD: refund.reference,
        }
        note = (self.provider.options or {}).get("refund_note", "")
        if note:
            fields["refund_note"] = note
        sid, failure = self._session("refund.pl", fields)
        if failure is not None:
            return failure
        root = self._api("refund.pl", {"action": "refund", "sid": sid})
        error = self._error(root)
        if error:
            return self._api_failure("refund.pl", error, already_done_means_pending=False)
        status = (root.findtext("status") or "").strip()
        skrill_id = (root.findtext("mb_transaction_id") or "").strip()
        return self._refund_result(status, skrill_id, root.findtext("failed_reason_code") or "")

    def _refund_result(self, status: str, skrill_id: str, code: str = "") -> ProviderResult:
        if status == PROCESSED:
            return ProviderResult(status=SUCCEEDED, provider_reference=skrill_id)
        if status == FAILED_AT_SKRILL:
            code = code.strip() or "refund_failed"
            return ProviderResult(
                status=FAILED,
                provider_reference=skrill_id,
                decline_code=code,
                decline_kind=self.decline_kind(code),
            )
        return ProviderResult(status=PENDING, provider_reference=skrill_id)

    def cancel_payment(self, *, deposit):
        raise NotImplementedError("Skrill Quick Checkout payments cannot be cancelled.")

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        record = self._query(trn_id=deposit.reference)
        if record is None:
            # No transaction yet: the player never paid (Skrill creates it on payment).
            return None
        return self._payment_result(record)

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        record = self._query(trn_id=withdrawal.reference)
        if record is None:
            return None
        return self._transfer_result(
            status=record["status"], skrill_id=record.get("mb_transaction_id", "")
        )

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        # A refund is known to Skrill by its own transaction id only (refund.pl takes no
        # reference of ours): without it there is nothing to ask.
        if not refund.provider_reference:
            return None
        record = self._query(mb_trn_id=refund.provider_reference)
        if record is None:
            return None
        return self._refund_result(
            record["status"],
            record.get("mb_transaction_id", ""),
            record.get("failed_reason_code", ""),
        )

    # --- webhooks --------------------------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> None:
        try:
            self._verify(body)
        except InvalidSignature:
            raise
        except Exception as exc:  # the contract: InvalidSignature and nothing else, ever
            raise InvalidSignature(f"unreadable callback ({type(exc).__name__})") from None

    def _verify(self, body: bytes) -> None:
        try:
            fields = form_fields(body)
        except MalformedWebhook as exc:
            raise InvalidSignature(str(exc)) from None
        missing = [name for name in (*SIGNED_FIELDS, "md5sig") if not fields.get(name)]
        if missing:
            raise InvalidSignature(f"missing {', '.join(missing)}")
        if not self.webhook_secret:
            raise InvalidSignature("no secret word configured")
        if not signatures_match(md5sig(fields, self.webhook_secret), fields["md5sig"]):
            raise InvalidSignature("md5sig does not match")
        received_sha2 = fields.get("sha2sig")
        if received_sha2 is not None:
            if not signatures_match(sha2sig(fields, self.webhook_secret), received_sha2):
                raise InvalidSignature("sha2sig does not match")
        elif (self.provider.options or {}).get("sha2sig_enabled"):
            raise InvalidSignature("sha2sig missing (Skrill sends it for this merchant)")
        # Signed: a callback of another Skrill account sharing our secret word is not ours.
        if fields["merchant_id"] != self.provider.merchant_id:
            raise InvalidSignature("callback for another merchant_id")
        # Unsigned, but a genuine callback always names our account: a different one means
        # the body was edited on its way.
        pay_to = fields.get("pay_to_email")
        merchant_email = (self.provider.options or {}).get("merchant_email", "")
        if pay_to and merchant_email and pay_to.lower() != merchant_email.lower():
            raise InvalidSignature("callback for another pay_to_email")

    def parse_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        """One event per callback. Statuses that move no money (0 pending, -1 cancelled, -2
        failed) are reported as they are; a status Skrill has not documented is reported as
        PENDING (never credited). 2 and -3 are confirmed with `status_trn` first (module
        docstring); a record that disagrees with the signed fields is MalformedWebhook."""
        fields = form_fields(body)
        missing = [name for name in SIGNED_FIELDS if not fields.get(name)]
        if missing:
            raise MalformedWebhook(f"missing {', '.join(missing)}")
        signed_amount = parse_decimal(fields["mb_amount"])
        if REFUND_REFERENCE_FIELD in fields:
            return [self._refund_event(fields, signed_amount)]
        return [self._payment_event(fields, signed_amount)]

    def _confirmed_record(self, fields: dict, signed_amount: Decimal, **lookup) -> dict:
        try:
            record = self._query(**lookup)
        except ProviderUnavailable as exc:
            # Credentials or record wrong: retrying the delivery will not help, the janitor's
            # polling resolves the payment once it is fixed.
            raise MalformedWebhook(f"status_trn could not confirm the callback: {exc}") from None
        if record is None:
            raise MalformedWebhook("Skrill has no record of this transaction (status_trn)")
        if record["transaction_id"] != fields["transaction_id"]:
            raise MalformedWebhook("status_trn names another transaction_id")
        if (
            parse_decimal(record["mb_amount"]) != signed_amount
            or record["mb_currency"] != fields["mb_currency"]
        ):
            raise MalformedWebhook(
                f"callback says {fields['mb_amount']} {fields['mb_currency']}, Skrill's record "
                f"{record['mb_amount']} {record['mb_currency']}"
            )
        return record

    def _payment_event(self, fields: dict, signed_amount: Decimal) -> ProviderEvent:
        transaction_id = fields["transaction_id"]
        status = fields["status"]
        event_type = f"status {status} ({STATUS_NAMES.get(status, 'undocumented')})"
        dedup_key = f"{transaction_id}:{status}"
        if status == CHARGEBACK:
            record = self._confirmed_record(fields, signed_amount, trn_id=transaction_id)
            converted = record.get("currency") not in (None, "", record["mb_currency"])
            return ProviderEvent(
                subject=DISPUTE,
                event_type=event_type,
                dedup_key=dedup_key,
                reference=transaction_id,
                dispute=DisputeInfo(
                    action=DISPUTE_CHARGEBACK,
                    # One chargeback per payment, whatever unsigned fields say.
                    dispute_reference=f"{transaction_id}:chargeback",
                    # Settled in another currency: the whole payment was charged back.
                    amount=None if converted else signed_amount,
                    currency=record["currency"] if converted else fields["mb_currency"],
                    reason="Skrill status -3 (chargeback)",
                ),
            )
        if status == PROCESSED:
            record = self._confirmed_record(fields, signed_amount, trn_id=transaction_id)
            if record["status"] not in (PROCESSED, CHARGEBACK):
                raise MalformedWebhook(
                    f"callback says processed, Skrill's record says status {record['status']}"
                )
            try:
                result = self._payment_result({**record, "status": PROCESSED})
            except ProviderUnavailable as exc:
                raise MalformedWebhook(str(exc)) from None
            return ProviderEvent(
                subject=DEPOSIT,
                event_type=event_type,
                dedup_key=dedup_key,
                reference=transaction_id,
                result=result,
            )
        # No money moves: the callback's own (unsigned) payer is good enough for grouping.
        result = self._payment_result(
            {**fields, "status": status if status in STATUS_NAMES else WAITING},
            is_confirmed=False,
        )
        return ProviderEvent(
            subject=DEPOSIT,
            event_type=event_type,
            dedup_key=dedup_key,
            reference=transaction_id,
            result=result,
        )

    def _refund_event(self, fields: dict, signed_amount: Decimal) -> ProviderEvent:
        status = fields["status"]
        skrill_id = fields.get("mb_transaction_id", "")
        if not skrill_id:
            raise MalformedWebhook("refund callback without mb_transaction_id")
        # The refund's Skrill id is unsigned: Skrill's record of it must be a transaction of
        # the signed payment, for the signed amount, before it names and deduplicates anything.
        record = self._confirmed_record(fields, signed_amount, mb_trn_id=skrill_id)
        confirmed_id = record.get("mb_transaction_id") or skrill_id
        return ProviderEvent(
            subject=REFUND,
            event_type=f"refund status {status} ({STATUS_NAMES.get(status, 'undocumented')})",
            dedup_key=f"refund:{confirmed_id}:{status}",
            reference=fields[REFUND_REFERENCE_FIELD],
            provider_reference=confirmed_id,
            result=self._refund_result(status, confirmed_id, fields.get("failed_reason_code", "")),
        )

    def webhook_ack(self) -> WebhookAck:
        # Skrill only needs HTTP 200; it re-posts until it gets one (up to 10 times).
        return WebhookAck(status=200, body=b"OK", content_type="text/plain")


def _payer_name(record: dict) -> str:
    """The payer's name, when Skrill posts it (not a documented status_url field, so usually
    absent); unsigned and informational."""
    parts = [record.get("firstname", "").strip(), record.get("lastname", "").strip()]
    return " ".join(part for part in parts if part)[:200]


def _json_error_code(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else ""
