"""Labels a field's value is printed next to, and reading a typed value from text.

A field's labels are its ``labels`` hints, then its description when short, then labels
made from its name: ``invoice.number`` gives "Invoice Number", "Invoice No", "Invoice #"
and so on, then "Number". Earlier labels are more specific and win over later ones.
"""

from __future__ import annotations

import re
from functools import lru_cache

from docjobs.templates import values as template_values
from docjobs.templates.schema import FieldType, TemplateField

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "number": ("No", "No.", "Nr", "#", "Num"),
    "id": ("ID", "No", "#", "Number"),
    "total": ("Grand Total", "Total Due", "Amount Due", "Balance Due", "Total Amount"),
    "amount": ("Line Total", "Total", "Amount"),
    "vendor": ("Seller", "Supplier", "From", "Company"),
    "seller": ("Vendor", "Supplier", "From"),
    "supplier": ("Vendor", "Seller", "From"),
    "customer": ("Bill To", "Billed To", "Sold To", "Client"),
    "due_date": ("Payment Due", "Due"),
    "tax": ("VAT", "Sales Tax", "GST"),
    "subtotal": ("Sub-total", "Sub Total", "Net Amount", "Net Total"),
    "quantity": ("Qty", "Quantity", "Units"),
    "qty": ("Quantity", "Units"),
    "unit_price": ("Price", "Rate", "Unit Cost"),
    "price": ("Unit Price", "Rate"),
    "description": ("Item", "Product", "Service", "Details"),
}
"""Other words documents use for common field names (keyed by the name's last part)."""
_PREFIXED_ONLY = frozenset({"No", "No.", "Nr", "#", "Num", "ID"})
"""Synonyms too generic to stand alone: "No" alone is more often a yes/no answer."""
_SEPARATORS = re.compile(r"^(?:[\s:#=.]|[-\u2013\u2014](?=\s))*")
"""What stands between a label and its value: "Invoice No.: 123", "Total - 5.00"."""


def labels_for(field: TemplateField) -> tuple[str, ...]:
    labels = list(field.labels)
    if field.description and len(field.description.split()) <= 6:
        labels.append(field.description)
    parts = field.name.split(".")
    leaf_key = _key(parts[-1])
    name = _words(parts[-1])
    synonyms = _SYNONYMS.get(leaf_key, ())
    if len(parts) > 1:
        parent = _words(parts[-2])
        labels.extend(f"{parent} {label}" for label in (name, *synonyms))
    # Longer first: "Total" also starts "Total Due", "Price" ends "Unit Price".
    standalone = sorted((name, *synonyms), key=lambda label: -len(label.split()))
    labels.extend(label for label in standalone if label not in _PREFIXED_ONLY)
    unique: dict[str, str] = {}
    for label in labels:
        unique.setdefault(" ".join(label.lower().split()), label)
    return tuple(unique.values())


@lru_cache(maxsize=4096)
def label_pattern(label: str) -> re.Pattern[str]:
    """``label`` as a whole phrase, any case and spacing: "Invoice No" finds "INVOICE  NO:"."""
    body = r"\s*".join(re.escape(word) for word in label.split())
    end = r"(?![A-Za-z0-9])" if label[-1].isalnum() else ""
    return re.compile(rf"(?<![A-Za-z0-9]){body}{end}", re.IGNORECASE)


def after_label(text: str) -> str:
    """``text`` without the separator that follows a label."""
    return _SEPARATORS.sub("", text, count=1).strip()


def read_value(field_type: FieldType, text: str) -> object:
    """The value of type ``field_type`` at the start of ``text``, or ``None``.

    The value must come first: after "Total", "excl. VAT: 1,000.00" is not the total.
    """
    text = text.strip()
    if not text:
        return None
    if field_type in ("string", "list"):
        return text
    if field_type == "date":
        date = template_values.find_date(text)
        return date.value.isoformat() if date is not None and date.start == 0 else None
    if field_type == "boolean":
        flag = template_values.find_boolean(text)
        return flag.value if flag is not None else None
    amount = template_values.find_amount(text)
    if amount is None or amount.start != 0:
        return None
    if field_type == "integer":
        return template_values.integer_value(amount.value)
    if field_type == "currency":
        return float(amount.value)
    return template_values.number_value(amount.value)


def _words(name: str) -> str:
    """``unit_price`` and ``unitPrice`` as "Unit Price"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ")
    return " ".join(word.capitalize() if word.islower() else word for word in spaced.split())


def _key(name: str) -> str:
    return _words(name).lower().replace(" ", "_")
