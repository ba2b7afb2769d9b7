"""Wire shapes: the native (`Api-Version-Date: 2026-10-15-1`) and legacy (no header) JSON.

Native shapes reproduce the fact sheet's §7 fixtures key for key; legacy shapes follow §2.4
and the §7.5 legacy webhook. Key order is deliberate (it is what the fixtures show, and the
§7.4 signature depends on byte-exact bodies).
"""

from __future__ import annotations

from typing import Any

from fakes.whop._util import formatted, iso, legacy_number, money, period_label
from fakes.whop.store import (
    Company,
    Invoice,
    Member,
    Membership,
    Payment,
    PersonView,
    Plan,
    Product,
    PromoCode,
    Record,
    Review,
    User,
    WaitlistEntry,
    WhopStore,
)

NATIVE_VERSION = "2026-10-15-1"
LEGACY_VERSION = "2025-01-01"  # what "no header" means on Whop


def _picture(user: User) -> dict[str, Any] | None:
    return {"url": user.profile_picture_url} if user.profile_picture_url else None


def _user_small(store: WhopStore, user_id: str | None) -> dict[str, Any] | None:
    user = store.users.get(user_id or "")
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "name": user.name, "profile_picture": _picture(user)}


def _product_title(store: WhopStore, product_id: str | None) -> str | None:
    product = store.products.get(product_id or "")
    return product.title if product else None


def _company(store: WhopStore, company_id: str) -> Company:
    return store.companies[company_id]


# ---- native ------------------------------------------------------------------------------


def native_account(store: WhopStore, company: Company) -> dict[str, Any]:
    owner = store.users.get(company.owner_user_id or "")
    return {
        "id": company.id,
        "title": company.title,
        "route": company.route,
        "logo_url": company.logo_url,
        "owner_user": {"id": owner.id, "username": owner.username, "name": owner.name} if owner else None,
        "created_at": iso(company.created_at),
    }


def native_membership(store: WhopStore, m: Membership) -> dict[str, Any]:
    company = _company(store, m.company_id)
    product = store.products.get(m.product_id)
    return {
        "id": m.id,
        "status": m.status,
        "account": {"id": company.id, "title": company.title, "route": company.route, "logo_url": company.logo_url},
        "user_id": m.user_id,
        "member_id": m.member_id,
        "product_id": m.product_id,
        "product": {
            "id": m.product_id,
            "title": product.title if product else None,
            "logo_url": product.logo_url if product else None,
        },
        "plan_id": m.plan_id,
        "promo_code_id": m.promo_code_id,
        "initial_price": money(m.initial_price, m.currency),
        "renewal_price": money(m.renewal_price, m.currency),
        "billing_period_days": m.billing_period_days,
        "collection_method": m.collection_method,
        "cancel_at_period_end": m.cancel_at_period_end,
        "cancel_option": m.cancel_option,
        "cancellation_reason": m.cancellation_reason,
        "canceled_at": iso(m.canceled_at),
        "feedback_option": m.feedback_option,
        "current_period_start": iso(m.current_period_start),
        "current_period_end": iso(m.current_period_end),
        "expires_at": iso(m.expires_at),
        "most_recent_action": m.most_recent_action,
        "most_recent_action_at": iso(m.most_recent_action_at),
        "split_pay_current_payments": m.split_pay_current_payments,
        "split_pay_required_payments": m.split_pay_required_payments,
        "license_key": m.license_key,
        "manage_url": m.manage_url,
        "member": None,  # only ever the caller's own row; a company credential never gets one
        "affiliate": _affiliate(m),
        "phone_number": m.phone_number,
        "metadata": dict(m.metadata),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def _affiliate(m: Membership) -> dict[str, Any] | None:
    """PY26 `types/membership_affiliate.py`; webhooks always send null (see `render_event`)."""
    if m.affiliate_id is None:
        return None
    return {
        "applies_to_payments": "first_payment",
        "commission_amount": None,
        "commission_percentage": 30.0,
        "commission_type": "percentage",
        "enabled": True,
        "id": m.affiliate_id,
        "user_id": m.affiliate_user_id,
    }


def native_member(store: WhopStore, member: Member, *, show_email: bool = True) -> dict[str, Any]:
    return {
        "id": member.id,
        "account_id": member.company_id,
        "user": _user_small(store, member.user_id),
        "display_name": member.display_name,
        "email": member.email if show_email else None,
        "phone_number": member.phone_number,
        "access_level": member.access_level,
        "status": member.status,
        "most_recent_action": member.most_recent_action,
        "most_recent_action_at": iso(member.most_recent_action_at),
        "usd_total_spent": money(store.member_total_spent(member), "usd"),
        "token_balance": member.token_balance,
        "joined_at": iso(member.joined_at),
        "last_accessed_at": iso(member.last_accessed_at),
        "created_at": iso(member.created_at),
    }


def native_product(store: WhopStore, product: Product) -> dict[str, Any]:
    company = _company(store, product.company_id)
    owner = store.users.get(product.owner_user_id or "")
    plan = store.default_plan(product)
    return {
        "id": product.id,
        "title": product.title,
        "headline": product.headline,
        "description": product.description,
        "route": product.route,
        "visibility": product.visibility,
        "marketplace_status": product.marketplace_status,
        "external_identifier": product.external_identifier,
        "account": {"id": company.id, "title": company.title, "route": company.route},
        "owner_user": {"id": owner.id, "username": owner.username, "name": owner.name} if owner else None,
        "member_count": store.product_member_count(product),
        "published_reviews_count": product.published_reviews_count,
        "average_review_rating": product.average_review_rating,
        "verified": product.verified,
        "labels": [],
        "gallery_images": [],
        "metadata": dict(product.metadata),
        "custom_cta": product.custom_cta,
        "custom_cta_url": None,
        "custom_statement_descriptor": None,
        "global_affiliate_status": "disabled",
        "global_affiliate_percentage": None,
        "member_affiliate_status": "disabled",
        "member_affiliate_percentage": None,
        "product_tax_code": None,
        "variant_attributes": None,
        "default_plan": (
            {
                "id": plan.id,
                "title": plan.title,
                "plan_type": plan.plan_type,
                "billing_period": plan.billing_period,
                "expiration_days": plan.expiration_days,
                "initial_price": money(plan.initial_price, plan.currency),
                "renewal_price": money(plan.renewal_price, plan.currency),
                "unlimited_stock": plan.unlimited_stock,
                "visibility": plan.visibility,
            }
            if plan
            else None
        ),
        "created_at": iso(product.created_at),
        "updated_at": iso(product.updated_at),
    }


def plan_formatted_price(plan: Plan) -> str:
    if plan.plan_type == "one_time":
        return formatted(plan.initial_price, plan.currency)
    text = f"{formatted(plan.renewal_price, plan.currency)} / {period_label(plan.billing_period)}"
    if plan.trial_period_days:
        text = f"{plan.trial_period_days}-day free trial, then {text}"
    elif plan.initial_price:
        text = f"{formatted(plan.initial_price, plan.currency)} + {text}"
    return text


def native_plan(store: WhopStore, plan: Plan) -> dict[str, Any]:
    company = _company(store, plan.company_id)
    return {
        "id": plan.id,
        "title": plan.title,
        "description": plan.description,
        "plan_type": plan.plan_type,
        "billing_period": plan.billing_period,
        "trial_period_days": plan.trial_period_days,
        "expiration_days": plan.expiration_days,
        # Plans kept JSON numbers for prices even on the pinned version (PY26 `types/plan.py`).
        "initial_price": legacy_number(plan.initial_price),
        "renewal_price": legacy_number(plan.renewal_price),
        "initial_price_due": money(plan.initial_price, plan.currency),
        "formatted_price": plan_formatted_price(plan),
        "currency": plan.currency,
        "visibility": plan.visibility,
        "release_method": plan.release_method,
        "product": {"id": plan.product_id, "title": _product_title(store, plan.product_id)},
        "account": {"id": company.id, "title": company.title, "route": company.route},
        "member_count": store.plan_member_count(plan),
        "purchase_url": f"https://whop.com/checkout/{plan.id}",
        "stock": plan.stock,
        "unlimited_stock": plan.unlimited_stock,
        "split_pay_required_payments": plan.split_pay_required_payments,
        "metadata": dict(plan.metadata),
        "internal_notes": plan.internal_notes,
        "sku": plan.sku,
        "created_at": iso(plan.created_at),
        "updated_at": iso(plan.updated_at),
    }


def native_payment(store: WhopStore, p: Payment, *, show_email: bool = True) -> dict[str, Any]:
    cur = p.currency
    usd_total = p.usd_total if p.usd_total is not None else p.total
    return {
        "id": p.id,
        "status": p.status,
        "substatus": p.substatus,
        "billing_reason": p.billing_reason,
        "account_id": p.company_id,
        "membership_id": p.membership_id,
        "member_id": p.member_id,
        "product_id": p.product_id,
        "plan_id": p.plan_id,
        "promo_code_id": p.promo_code_id,
        "checkout_configuration_id": p.checkout_configuration_id,
        "user": _user_small(store, p.user_id),
        "customer_email": p.customer_email if show_email else None,
        "customer_phone": p.customer_phone,
        "currency": cur,
        "subtotal": money(p.subtotal, cur),
        "tax_amount": money(p.tax_amount, cur),
        "tax_behavior": p.tax_behavior,
        "tax_refunded_amount": money(p.tax_refunded_amount, cur),
        "total": money(p.total, cur),
        "usd_total": money(usd_total, "usd"),
        "presentment_total": money(p.total, cur),
        "amount_after_fees": money(p.amount_after_fees, cur),
        "refunded_amount": money(p.refunded_amount, cur),
        "refunded_at": iso(p.refunded_at),
        "refundable": p.refundable,
        "retryable": p.retryable,
        "voidable": p.voidable,
        "auto_refunded": p.auto_refunded,
        "payments_failed": p.payments_failed,
        "failure_message": p.failure_message,
        "decline_code": p.decline_code,
        "payment_method_type": p.payment_method_type,
        "payment_method_id": p.payment_method_id,
        "payment_instrument": None,
        "three_ds_verified": p.three_ds_verified,
        "holds": [],
        "line_items": [],
        "payment_rule_matches": [],
        "metadata": dict(p.metadata),
        "paid_at": iso(p.paid_at),
        "last_payment_attempt_at": iso(p.last_payment_attempt_at),
        "next_payment_attempt_at": iso(p.next_payment_attempt_at),
        "dispute_alerted_at": iso(p.dispute_alerted_at),
        "settlement_time_at": None,  # null in lists (PY26 docstring)
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def native_user(user: User, *, include_email: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "bio": user.bio,
        "profile_picture": _picture(user),
        "banner": None,
        "created_at": iso(user.created_at),
    }
    if include_email:  # only on the self view (/users/me)
        out["email"] = user.email
    return out


# ---- legacy ------------------------------------------------------------------------------


def _legacy_user(store: WhopStore, user_id: str | None, email: str | None) -> dict[str, Any] | None:
    user = store.users.get(user_id or "")
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "name": user.name, "email": email}


def legacy_membership(store: WhopStore, m: Membership, *, show_email: bool = True) -> dict[str, Any]:
    company = _company(store, m.company_id)
    member = store.members.get(m.member_id or "")
    user = store.users.get(m.user_id or "")
    email = (member.email if member else None) if show_email else None
    return {
        "id": m.id,
        "status": m.status,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "joined_at": iso(m.joined_at),
        "manage_url": m.manage_url,
        "member": {"id": m.member_id} if m.member_id else None,
        "user": (
            {
                "id": user.id,
                "username": user.username,
                "name": user.name,
                "email": email,
                "profile_pic": user.profile_picture_url,
            }
            if user
            else None
        ),
        "renewal_period_start": iso(m.current_period_start),
        "renewal_period_end": iso(m.current_period_end),
        "cancel_at_period_end": m.cancel_at_period_end,
        "cancel_option": m.cancel_option,
        "cancellation_reason": m.cancellation_reason,
        "canceled_at": iso(m.canceled_at),
        "currency": m.currency,
        "company": {"id": company.id, "title": company.title},
        "plan": {"id": m.plan_id},
        "promo_code": {"id": m.promo_code_id} if m.promo_code_id else None,
        "product": {"id": m.product_id, "title": _product_title(store, m.product_id)},
        "license_key": m.license_key,
        "metadata": dict(m.metadata),
        "payment_collection_paused": m.payment_collection_paused,
        "custom_field_responses": [dict(r) for r in m.custom_field_responses],
        "initial_price_paid": formatted(m.initial_price, m.currency),
        "formatted_renewal_price": (
            f"{formatted(m.renewal_price, m.currency)} / {period_label(m.billing_period_days)}"
            if m.renewal_price is not None
            else ""
        ),
    }


def legacy_member(store: WhopStore, member: Member, *, show_email: bool = True) -> dict[str, Any]:
    return {
        "id": member.id,
        "user": _legacy_user(store, member.user_id, member.email if show_email else None),
        "access_level": member.access_level,
        "status": member.status,
        "phone": member.phone_number,
        "usd_total_spent": legacy_number(store.member_total_spent(member)),
        "company_token_balance": member.token_balance,
        "most_recent_action": member.most_recent_action,
        "most_recent_action_at": iso(member.most_recent_action_at),
        "joined_at": iso(member.joined_at),
        "created_at": iso(member.created_at),
        "updated_at": iso(member.updated_at),
    }


def legacy_product(store: WhopStore, product: Product) -> dict[str, Any]:
    company = _company(store, product.company_id)
    owner = store.users.get(product.owner_user_id or "")
    return {
        "id": product.id,
        "title": product.title,
        "headline": product.headline,
        "description": product.description,
        "route": product.route,
        "visibility": product.visibility,
        "external_identifier": product.external_identifier,
        "company": {"id": company.id, "route": company.route, "title": company.title},
        "owner_user": {"id": owner.id, "username": owner.username, "name": owner.name} if owner else None,
        "member_count": store.product_member_count(product),
        "published_reviews_count": product.published_reviews_count,
        "verified": product.verified,
        "metadata": dict(product.metadata),
        "created_at": iso(product.created_at),
        "updated_at": iso(product.updated_at),
    }


def legacy_plan(store: WhopStore, plan: Plan) -> dict[str, Any]:
    company = _company(store, plan.company_id)
    return {
        "id": plan.id,
        "title": plan.title,
        "description": plan.description,
        "plan_type": plan.plan_type,
        "billing_period": plan.billing_period,
        "trial_period_days": plan.trial_period_days,
        "expiration_days": plan.expiration_days,
        "initial_price": legacy_number(plan.initial_price),
        "renewal_price": legacy_number(plan.renewal_price),
        "currency": plan.currency,
        "visibility": plan.visibility,
        "release_method": plan.release_method,
        "company": {"id": company.id, "title": company.title},
        "product": {"id": plan.product_id, "title": _product_title(store, plan.product_id)},
        "member_count": store.plan_member_count(plan),
        "purchase_url": f"https://whop.com/checkout/{plan.id}",
        "stock": plan.stock,
        "unlimited_stock": plan.unlimited_stock,
        "metadata": dict(plan.metadata),
        "internal_notes": plan.internal_notes,
        "created_at": iso(plan.created_at),
        "updated_at": iso(plan.updated_at),
    }


def legacy_payment(store: WhopStore, p: Payment, *, show_email: bool = True) -> dict[str, Any]:
    company = _company(store, p.company_id)
    member = store.members.get(p.member_id or "")
    membership = store.memberships.get(p.membership_id or "")
    product = store.products.get(p.product_id or "")
    plan = store.plans.get(p.plan_id or "")
    usd_total = p.usd_total if p.usd_total is not None else p.total
    return {
        "id": p.id,
        "status": p.status,
        "substatus": p.substatus,
        "billing_reason": p.billing_reason,
        "company": {"id": company.id, "route": company.route, "title": company.title},
        "user": _legacy_user(store, p.user_id, p.customer_email if show_email else None),
        "member": {"id": p.member_id, "phone": member.phone_number if member else None} if p.member_id else None,
        "membership": (
            {"id": p.membership_id, "status": membership.status if membership else None} if p.membership_id else None
        ),
        "plan": {"id": p.plan_id, "metadata": dict(plan.metadata) if plan else {}} if p.plan_id else None,
        "product": (
            {
                "id": p.product_id,
                "title": product.title if product else None,
                "route": product.route if product else None,
                "metadata": dict(product.metadata) if product else {},
            }
            if p.product_id
            else None
        ),
        "promo_code": {"id": p.promo_code_id} if p.promo_code_id else None,
        "currency": p.currency,
        "subtotal": legacy_number(p.subtotal),
        "total": legacy_number(p.total),
        "usd_total": legacy_number(usd_total),
        "amount_after_fees": legacy_number(p.amount_after_fees),
        "settlement_amount": legacy_number(p.amount_after_fees),
        "settlement_currency": p.currency,
        "refunded_amount": legacy_number(p.refunded_amount),
        "tax_amount": legacy_number(p.tax_amount),
        "card_brand": p.card_brand,
        "card_last4": p.card_last4,
        "payment_method": {"id": p.payment_method_id, "type": p.payment_method_type} if p.payment_method_id else None,
        "paid_at": iso(p.paid_at),
        "last_payment_attempt": iso(p.last_payment_attempt_at),
        "next_payment_attempt": iso(p.next_payment_attempt_at),
        "refunded_at": iso(p.refunded_at),
        "dispute_alerted_at": iso(p.dispute_alerted_at),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "refundable": p.refundable,
        "retryable": p.retryable,
        "voidable": p.voidable,
        "auto_refunded": p.auto_refunded,
    }


# ---- invoices and waitlist entries (one family: no legacy shape is documented) ---------------


def _invoice_user(store: WhopStore, user_id: str | None, *, show_email: bool) -> dict[str, Any] | None:
    user = store.users.get(user_id or "")
    if user is None:
        return None
    return {"email": user.email if show_email else None, "id": user.id, "name": user.name, "username": user.username}


def _invoice_plan(store: WhopStore, inv: Invoice) -> dict[str, Any]:
    plan = store.plans.get(inv.plan_id)
    currency = plan.currency if plan else "usd"
    price = (plan.renewal_price if plan.plan_type == "renewal" else plan.initial_price) if plan else None
    return {"currency": currency, "formatted_price": formatted(price, currency), "id": inv.plan_id}


def native_invoice(store: WhopStore, inv: Invoice, *, show_email: bool = True) -> dict[str, Any]:
    """PY26 `types/invoice.py` (retrieve, and the `invoice.*` webhooks' `data`)."""
    plan = store.plans.get(inv.plan_id)
    return {
        "automatically_finalizes_at": None,
        "charge_buyer_fee": inv.charge_buyer_fee,
        "collection_method": inv.collection_method,
        "company": {"id": inv.company_id},
        "created_at": iso(inv.created_at),
        "current_plan": {**_invoice_plan(store, inv), "description": plan.description if plan else None},
        "customer_name": inv.customer_name,
        "due_date": iso(inv.due_date),
        "email_address": inv.email_address if show_email else None,
        "fetch_invoice_token": f"fit_{inv.id}",
        "id": inv.id,
        "line_items": [],
        "mailing_address": None,
        "member": {"id": inv.member_id} if inv.member_id else None,
        "number": inv.number,
        "pay_online_url": f"https://whop.com/invoices/{inv.id}/pay",
        "payment": {"id": inv.payment_id} if inv.payment_id else None,
        "payment_processing": inv.payment_processing,
        "product": {"id": inv.product_id, "title": _product_title(store, inv.product_id) or ""},
        "status": inv.status,
        "subscription_billing_anchor_at": None,
        "updated_at": iso(inv.updated_at),
        "user": _invoice_user(store, inv.user_id, show_email=show_email),
    }


def invoice_list_item(store: WhopStore, inv: Invoice, *, show_email: bool = True) -> dict[str, Any]:
    """PY26 `types/invoice_list_item.py`: a subset (no company, member, product, payment or
    updated_at), so a caller retrieves an invoice to learn whose it is."""
    user = _invoice_user(store, inv.user_id, show_email=show_email)
    return {
        "created_at": iso(inv.created_at),
        "current_plan": _invoice_plan(store, inv),
        "due_date": iso(inv.due_date),
        "email_address": inv.email_address if show_email else None,
        "fetch_invoice_token": f"fit_{inv.id}",
        "id": inv.id,
        "line_items": [],
        "number": inv.number,
        "payment_processing": inv.payment_processing,
        "status": inv.status,
        "user": {k: v for k, v in user.items() if k != "email"} if user else None,
    }


def native_waitlist_entry(store: WhopStore, e: WaitlistEntry) -> dict[str, Any]:
    """PY26 `types/waitlist_entry.py` (`/waitlist_entries` list and retrieve): flat ids."""
    return {
        "account_id": e.company_id,
        "approval_failure_reason": e.approval_failure_reason,
        "buyer_account_id": e.buyer_account_id,
        "created_at": iso(e.created_at),
        "custom_field_responses": [dict(r) for r in e.custom_field_responses],
        "id": e.id,
        "membership_id": e.membership_id,
        "metadata": dict(e.metadata),
        "plan_id": e.plan_id,
        "product_id": e.product_id,
        "status": e.status,
        "updated_at": iso(e.updated_at),
        "user_id": e.user_id,
    }


def entry_event_data(store: WhopStore, e: WaitlistEntry, *, show_email: bool = True) -> dict[str, Any]:
    """PY26 `types/entry.py`, the `entry.*` webhooks' `data`: nested user, plan and product, no
    account, no `updated_at` and no membership (so a receiver reads the signup again)."""
    user = store.users[e.user_id]
    status = e.status if e.status in ("drafted", "pending", "approved", "denied") else "denied"
    return {
        "created_at": iso(e.created_at),
        "custom_field_responses": [dict(r) for r in e.custom_field_responses],
        "id": e.id,
        "plan": {"id": e.plan_id},
        "product": {"id": e.product_id, "title": _product_title(store, e.product_id) or ""} if e.product_id else None,
        "status": status,
        "user": {
            "email": user.email if show_email else None,
            "id": user.id,
            "name": user.name,
            "username": user.username,
        },
    }


def review_list_item(store: WhopStore, r: Review) -> dict[str, Any]:
    """PY26 `types/review_list_item.py`: no product and no account (lists are asked per one)."""
    user = store.users[r.user_id]
    return {
        "attachments": [],
        "created_at": iso(r.created_at),
        "description": r.description,
        "id": r.id,
        "joined_at": iso(r.joined_at),
        "paid_for_product": r.paid_for_product,
        "published_at": iso(r.published_at),
        "stars": r.stars,
        "status": r.status,
        "title": r.title,
        "updated_at": iso(r.updated_at),
        "user": {"id": user.id, "name": user.name, "username": user.username},
    }


def native_review(store: WhopStore, r: Review) -> dict[str, Any]:
    """PY26 `types/review.py` (retrieve): the list item plus its product and account."""
    company = _company(store, r.company_id)
    return {
        **review_list_item(store, r),
        "account": {"id": company.id, "route": company.route, "title": company.title},
        "product": {"id": r.product_id, "title": _product_title(store, r.product_id) or ""},
    }


def native_person(store: WhopStore, p: PersonView) -> dict[str, Any]:
    """PY26 `people/types/list_people_response_data_item.py`."""
    user = store.users[p.user_id]
    member = store.members[p.member_id]
    return {
        "account_id": p.company_id,
        "aov": float(p.ltv / p.purchase_count) if p.purchase_count else None,
        "device": None,
        "email": member.email,
        "event_count": p.purchase_count + 1,
        "first_purchase_at": iso(p.first_purchase_at),
        "first_seen_at": iso(p.first_seen_at),
        "first_source": p.first_source,
        "id": p.id,
        "last_ip": None,
        "last_purchase_at": iso(p.last_purchase_at),
        "last_seen_at": iso(p.last_seen_at),
        "last_source": p.last_source,
        "location": None,
        "ltv": float(p.ltv),
        "member": {"id": p.member_id},
        "name": user.name,
        "phone": member.phone_number,
        "purchase_count": p.purchase_count,
        "timezone": None,
        "user": {"id": user.id, "username": user.username},
    }


def native_promo_code(store: WhopStore, p: PromoCode) -> dict[str, Any]:
    """PY26 `types/promo_code.py`."""
    company = _company(store, p.company_id)
    return {
        "account": {"id": company.id, "title": company.title, "route": company.route},
        "amount_off": float(p.amount_off),
        "churned_users_only": False,
        "code": p.code,
        "created_at": iso(p.created_at),
        "currency": p.currency,
        "duration": "forever",
        "existing_memberships_only": False,
        "expires_at": None,
        "id": p.id,
        "metadata": {},
        "new_users_only": False,
        "one_per_customer": False,
        "product": None,
        "promo_duration_months": None,
        "promo_type": p.promo_type,
        "status": p.status,
        "stock": 0,
        "unlimited_stock": True,
        "updated_at": iso(p.updated_at),
        "uses": p.uses,
    }


# ---- dispatch ----------------------------------------------------------------------------


def render(store: WhopStore, record: Record, *, legacy: bool = False, show_email: bool = True) -> dict[str, Any]:
    """Any record in the requested family."""
    if isinstance(record, Membership):
        return legacy_membership(store, record, show_email=show_email) if legacy else native_membership(store, record)
    if isinstance(record, Member):
        return (legacy_member if legacy else native_member)(store, record, show_email=show_email)
    if isinstance(record, Payment):
        return (legacy_payment if legacy else native_payment)(store, record, show_email=show_email)
    if isinstance(record, Product):
        return (legacy_product if legacy else native_product)(store, record)
    if isinstance(record, Plan):
        return (legacy_plan if legacy else native_plan)(store, record)
    if isinstance(record, Company):
        return native_account(store, record)
    if isinstance(record, User):
        return native_user(record, include_email=False)
    if isinstance(record, Invoice):
        return native_invoice(store, record, show_email=show_email)
    if isinstance(record, WaitlistEntry):
        return native_waitlist_entry(store, record)
    if isinstance(record, Review):
        return native_review(store, record)
    if isinstance(record, PersonView):
        return native_person(store, record)
    if isinstance(record, PromoCode):
        return native_promo_code(store, record)
    raise TypeError(f"cannot render {type(record).__name__}")


def render_event(store: WhopStore, record: Record, *, legacy: bool = False) -> dict[str, Any]:
    """A record as a webhook's `data` carries it: as the API renders it, except a waitlist
    entry, which webhooks send in the older `Entry` shape."""
    if isinstance(record, WaitlistEntry):
        return entry_event_data(store, record)
    rendered = render(store, record, legacy=legacy)
    if isinstance(record, Membership) and "affiliate" in rendered:
        rendered["affiliate"] = None  # "always null in webhooks" (research/whop-api.md §2.3)
    return rendered
