"""Just enough S3 (AWS Signature V4, stdlib only) to create the rig's bucket in
MinIO, so `local-cluster up` needs no boto3/minio package."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client

REGION = "us-east-1"  # MinIO's default region


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def request(endpoint: str, access_key: str, secret_key: str, method: str, path: str) -> int:
    """Send an empty-body signed request to http://endpoint/path; return the status."""
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {"host": endpoint, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            path,
            "",
            *(f"{k}:{headers[k]}" for k in sorted(headers)),
            "",
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(
        _sign(_sign(_sign(("AWS4" + secret_key).encode(), day), REGION), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    conn = http.client.HTTPConnection(endpoint, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def ensure_bucket(endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
    if request(endpoint, access_key, secret_key, "HEAD", f"/{bucket}") == 200:
        return
    status = request(endpoint, access_key, secret_key, "PUT", f"/{bucket}")
    if status != 200:
        raise RuntimeError(f"creating bucket {bucket} at {endpoint}: HTTP {status}")
