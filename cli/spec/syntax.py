"""The clouds' and Kubernetes' own naming rules, as checks that match the WHOLE string.

Every spec string that reaches Terraform, an image name or a Kubernetes object is checked here (or
by a pydantic pattern, which pydantic-core anchors at the end of the text). Python's `re.match`
with `$` would let "us-west-2\\n" through, so every check uses `re.fullmatch` with ASCII classes:
`[a-z]` never matches a Cyrillic look-alike. Each check returns None when the value is fine, else
the problem in words that say what is valid.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

_A = re.ASCII

AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}", _A)
GCP_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}", _A)
AWS_INSTANCE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+", _A)
GCP_MACHINE = re.compile(r"[a-z][a-z0-9]*-[a-z0-9-]+", _A)
GCP_PROJECT = re.compile(r"([a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]", _A)
GCP_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", _A)
EKS_CLUSTER = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", _A)
GKE_CLUSTER = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", _A)
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", _A)
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*", _A)
K8S_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", _A)
GCP_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}", _A)
GCP_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}", _A)

# Keys mlkit sets itself, or that a cloud or Kubernetes owns: a pool label or taint under one of
# these would be overridden (or override mlkit's own), and pods that select by them never schedule.
RESERVED_DOMAINS = {
    "mlkit.dev": "mlkit's own: the manifests select pools by mlkit.dev/ labels, and a value of yours would override them so that pods never schedule",
    "kubernetes.io": "reserved for Kubernetes: the kubelet refuses to set such labels on its node, or Kubernetes overrides them",
    "k8s.io": "reserved for Kubernetes: the kubelet refuses to set such labels on its node, or Kubernetes overrides them",
    "amazonaws.com": "reserved by AWS: EKS sets these itself",
    "amazon.com": "reserved by AWS: mlkit taints Neuron nodes with aws.amazon.com/neuron and its device plugin sets these",
    "k8s.aws": "reserved by AWS: its controllers set these",
    "cloud.google.com": "reserved by GKE: it sets these itself",
    "gke.io": "reserved by GKE: it sets these itself",
    "google.com": "reserved by GKE: it taints TPU nodes with google.com/tpu itself",
    "nvidia.com": "reserved by NVIDIA's device plugin: mlkit taints GPU nodes with nvidia.com/gpu and the plugin sets nvidia.com/ labels",
}

_CONTROL_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\0": "NUL"}


def control_char(value: str) -> str | None:
    """The first control, format or unassigned character in a string (NUL, newlines, bidi overrides,
    zero-width spaces...), named so that a person can find it; None if there is none."""
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "a control character")
            return f"U+{ord(ch):04X} ({name}) at character {i + 1}"
    return None


def _ip_like(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        return False


def s3_bucket(name: str) -> str | None:
    """S3 general purpose bucket naming rules (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)."""
    if not 3 <= len(name) <= 63:
        return f"is {len(name)} characters; S3 bucket names are 3 to 63"
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name, _A):
        return "is not an S3 bucket name: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name:
        return "has two dots in a row; S3 bucket names cannot"
    if _ip_like(name):
        return "is formatted as an IP address; S3 bucket names cannot be"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"starts with '{prefix}', which S3 reserves"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if name.endswith(suffix):
            return f"ends with '{suffix}', which S3 reserves"
    return None


def gcs_bucket(name: str) -> str | None:
    """Cloud Storage bucket naming rules (cloud.google.com/storage/docs/buckets#naming)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", name, _A):
        return "is not a GCS bucket name: lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    parts = name.split(".")
    if len(parts) == 1 and not 3 <= len(name) <= 63:
        return f"is {len(name)} characters; GCS bucket names are 3 to 63 (up to 222 with dots)"
    if len(name) > 222:
        return f"is {len(name)} characters; GCS bucket names with dots are at most 222"
    if any(not part or len(part) > 63 for part in parts):
        return "has an empty or longer than 63 characters part between dots"
    if _ip_like(name):
        return "is formatted as an IP address; GCS bucket names cannot be"
    if name.startswith("goog") or re.search(r"g[o0][o0]g[l1]e", name):
        return "starts with 'goog' or contains 'google' (or a look-alike), which GCS refuses"
    return None


def key_prefix(value: str) -> str | None:
    if len(value) > 200:
        return f"is {len(value)} characters; at most 200"
    if not KEY_PREFIX.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        return ("is not a state key prefix: folders of letters, digits, '_', '.' and '-' separated by '/', "
                "no '.' or '..' folder, no leading or trailing '/' (e.g. mlkit or teams/ml/prod)")
    return None


def aws_region(value: str) -> str | None:
    return None if AWS_REGION.fullmatch(value) else f"{value!r} is not an AWS region (e.g. us-west-2, eu-central-1)"


def gcp_region(value: str) -> str | None:
    return None if GCP_REGION.fullmatch(value) else f"{value!r} is not a GCP region (e.g. us-central1, europe-west4)"


def gcp_zone(value: str, region: str) -> str | None:
    return None if re.fullmatch(re.escape(region) + r"-[a-z]", value, _A) else f"{value!r} is not a zone of {region} (e.g. {region}-a)"


def qualified_name(key: str) -> str | None:
    """A Kubernetes label or taint key: an optional DNS subdomain prefix and '/', then a name of 1 to 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return (f"{key!r} has an invalid prefix: it must be a DNS subdomain (lowercase letters, "
                "digits, '-' and '.'), at most 253 characters, e.g. example.com/team")
    if not 1 <= len(name) <= 63 or not K8S_NAME.fullmatch(name):
        return (f"{key!r} is not a Kubernetes key: 1 to 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit, optionally after a prefix/ (e.g. team or example.com/team)")
    return None


def reserved_key(key: str) -> str | None:
    prefix, slash, _ = key.rpartition("/")
    if not slash:
        return None
    for domain, reason in RESERVED_DOMAINS.items():
        if prefix == domain or prefix.endswith("." + domain):
            return f"{key!r} uses the prefix {prefix}/, {reason}; pick a prefix of your own (e.g. example.com/) or none"
    return None


def label_value(value: str) -> str | None:
    if value == "" or (len(value) <= 63 and K8S_NAME.fullmatch(value)):
        return None
    return f"{value!r} is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (or empty)"


def aws_tag(key: str, value: str) -> tuple[str | None, str | None]:
    """AWS tag rules (docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html): problems of the key and of the value."""

    def chars_ok(s: str) -> bool:
        return all(c.isalnum() or c in " _.:/=+-@" for c in s)

    key_problem = value_problem = None
    if not 1 <= len(key) <= 128 or not chars_ok(key):
        key_problem = f"{key!r} is not an AWS tag key: 1 to 128 letters, digits, spaces and _ . : / = + - @"
    elif key.lower().startswith("aws:"):
        key_problem = f"{key!r} starts with 'aws:', which AWS reserves for its own tags"
    elif key != key.strip():
        key_problem = f"{key!r} has spaces at its start or end; remove them"
    if len(value) > 256 or not chars_ok(value):
        value_problem = f"{value!r} is not an AWS tag value: at most 256 letters, digits, spaces and _ . : / = + - @"
    elif value != value.strip():
        value_problem = f"{value!r} has spaces at its start or end; remove them"
    return key_problem, value_problem


def gcp_label(key: str, value: str) -> tuple[str | None, str | None]:
    """GCP label rules (cloud.google.com/resource-manager/docs/labels-overview): problems of the key and of the value."""
    key_problem = value_problem = None
    if not GCP_LABEL_KEY.fullmatch(key):
        fix = re.sub(r"[^a-z0-9_-]", "-", key.lower()).strip("-") or "team"
        if not fix[0].isalpha():
            fix = "x-" + fix
        key_problem = f"{key!r} is not a GCP label key: 1 to 63 lowercase letters, digits, '_' and '-', starting with a letter (e.g. {fix[:63]!r})"
    elif key.startswith("goog"):
        key_problem = f"{key!r} starts with 'goog', which Google reserves"
    if not GCP_LABEL_VALUE.fullmatch(value):
        value_problem = f"{value!r} is not a GCP label value: at most 63 lowercase letters, digits, '_' and '-'"
    return key_problem, value_problem


def cidr(value: str) -> str | None:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        return f"{value!r} is not an IPv4 CIDR block ({exc}); e.g. 203.0.113.0/24"
    return None
