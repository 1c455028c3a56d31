"""A signed PDF made searchable still verifies: the text layer is appended as an
incremental update after the signed bytes, which stay as they were (real Tesseract,
signed and verified with pyHanko under a certificate made here)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import weasyprint
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw, ImageFont
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader, PdfWriter

from docjobs.domain.models import OcrSimple
from docjobs.runner.engines.tesseract import extract
from tests.docs import FONTS, pdf_of_images, png_bytes

WORDS = ("Contract", "Signed", "Witness", "Approved")


def certificate(directory: Path) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed signing certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docjobs test signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file, cert


def scan() -> Image.Image:
    image = Image.new("L", (1400, 700), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONTS["sans"], 48)
    for index, word in enumerate(WORDS):
        draw.text((120 + 620 * (index % 2), 120 + 300 * (index // 2)), word, font=font, fill=0)
    return image


def xref_table_pdf(image: Image.Image) -> bytes:
    # Pillow's PDF gives the free head entry generation 65536, which pyHanko reads strictly;
    # pypdf writes it again as it should be, with a cross-reference table.
    clean = io.BytesIO()
    PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_of_images([image])))).write(clean)
    return clean.getvalue()


def xref_stream_pdf(image: Image.Image) -> bytes:
    """The scan as WeasyPrint lays it out: objects in streams, a cross-reference stream."""
    data = base64.b64encode(png_bytes(image)).decode()
    page = f'<img style="width: 100%" src="data:image/png;base64,{data}">'
    pdf: bytes = weasyprint.HTML(string=page).write_pdf()
    return pdf


def signed(unsigned: bytes, directory: Path) -> tuple[bytes, x509.Certificate]:
    """``unsigned`` with an approval signature (in an invisible field) appended."""
    key_file, cert_file, cert = certificate(directory)
    signer = signers.SimpleSigner.load(str(key_file), str(cert_file))
    assert signer is not None
    writer = IncrementalPdfFileWriter(io.BytesIO(unsigned))
    out = signers.sign_pdf(
        writer, signers.PdfSignatureMetadata(field_name="Approval"), signer=signer
    )
    return out.getvalue(), cert


def verified(pdf: Path, cert: x509.Certificate) -> PdfSignatureStatus:
    root = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    with pdf.open("rb") as stream:
        reader = PdfFileReader(stream)
        (signature,) = reader.embedded_signatures
        return validate_pdf_signature(signature, ValidationContext(trust_roots=[root]))


@pytest.mark.parametrize("layout", [xref_table_pdf, xref_stream_pdf])
def test_a_signed_scan_made_searchable_keeps_a_valid_signature(
    tmp_path: Path, layout: Callable[[Image.Image], bytes]
) -> None:
    signed_pdf, cert = signed(layout(scan()), tmp_path)
    source = tmp_path / "signed.pdf"
    source.write_bytes(signed_pdf)
    assert verified(source, cert).bottom_line  # the test's own signature holds to begin with

    output = extract(OcrSimple(output="searchable_pdf"), source, "application/pdf", tmp_path)

    result = output.path.read_bytes()
    # The signed revision is the output's first bytes, unchanged; the layer follows it.
    assert result.startswith(signed_pdf) and len(result) > len(signed_pdf)
    status = verified(output.path, cert)
    assert status.intact and status.valid and status.trusted
    # The signature covers its whole revision; the revision after it is the text layer.
    assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    # Drawing on a page is a change no signature's permissions allow: pyHanko reports it as
    # such (level OTHER), while the signed revision itself stays intact and verifiable.
    assert status.modification_level == ModificationLevel.OTHER
    text = PdfReader(output.path).pages[0].extract_text()
    assert set(WORDS) <= set(text.split())
