"""What Kubernetes takes as an object name and as a label value.

A path's name that is no object name names nothing: the API answers 404 without asking the
cluster. A value that is no label value cannot label a run (a queue so named is still the
run's queue, without the label; a schedule so named still triggers its runs, without the
label) nor be selected by label (the API filters on it itself).
"""

from __future__ import annotations

import re

from podtask._contract.limits import MAX_OBJECT_NAME_LENGTH

# RFC 1123 subdomains (loosely: the cluster has the last word) and label values.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
MAX_LABEL_VALUE_LENGTH = 63
# A DNS label (RFC 1123): task ids; dotted labels make a DNS subdomain: queue names.
DNS_LABEL_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
TASK_ID_PATTERN = rf"^{DNS_LABEL_PATTERN}$"
QUEUE_NAME_PATTERN = rf"^{DNS_LABEL_PATTERN}(\.{DNS_LABEL_PATTERN})*$"


def is_object_name(name: str) -> bool:
    return len(name) <= MAX_OBJECT_NAME_LENGTH and bool(_OBJECT_NAME.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL_VALUE_LENGTH and bool(_LABEL_VALUE.match(value))
