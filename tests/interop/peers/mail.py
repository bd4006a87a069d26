"""Message helper for the peer matrix (tests/interop/peers/run.sh).

  mail.py make DIR            write DIR/message.eml (8-bit UTF-8 text part, 2 MiB
                              attachment) and DIR/hashes (sha256 of both, decoded)
  mail.py send PORT FROM TO FILE [TAG [RCPT-OPTION]]
                              submit FILE over SMTP (BODY=8BITMIME) to 127.0.0.1:PORT,
                              with Subject and Message-ID made unique by TAG, and
                              RCPT-OPTION (e.g. NOTIFY=SUCCESS) on the RCPT command
  mail.py check FILE DIR      the delivered FILE carries the same text and attachment
  mail.py dsn FILE            FILE parses as a delivery report (RFC 3464): prints the
                              Action and Status of each recipient
"""
import email
import email.policy
import hashlib
import os
import smtplib
import sys
from email.message import EmailMessage

TEXT = "Grüße aus Zürich: ÄÖÜ äöü ß — naïve café, 日本語のテキスト, ελληνικά.\n" * 20


def make(d):
    os.makedirs(d, exist_ok=True)
    blob = hashlib.shake_256(b"postern interop attachment").digest(2 * 1024 * 1024)
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "alice@postern.test"
    m["To"] = "bob@example.test"
    m["Subject"] = "matrix"
    m.set_content(TEXT, subtype="plain", charset="utf-8", cte="8bit")
    m.add_attachment(blob, maintype="application", subtype="octet-stream",
                     filename="blob.bin")
    with open(os.path.join(d, "message.eml"), "wb") as f:
        f.write(m.as_bytes())
    with open(os.path.join(d, "hashes"), "w") as f:
        f.write(hashlib.sha256(TEXT.encode()).hexdigest() + "\n")
        f.write(hashlib.sha256(blob).hexdigest() + "\n")


def send(port, sender, to, path, tag, rcpt_option=None):
    raw = open(path, "rb").read()
    m = email.message_from_bytes(raw, policy=email.policy.SMTP)
    del m["Subject"], m["To"], m["Message-ID"]
    m["Subject"] = "matrix " + tag
    m["To"] = to
    m["Message-ID"] = "<%s@postern.test>" % tag
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.postern.test",
                      timeout=30) as s:
        s.ehlo()
        opts = ["BODY=8BITMIME"] if s.has_extn("8bitmime") else []
        rcpt_options = [rcpt_option] if rcpt_option else []
        s.sendmail(sender, [to], m.as_bytes(), mail_options=opts, rcpt_options=rcpt_options)


def check(path, d):
    want = open(os.path.join(d, "hashes")).read().split()
    m = email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)
    text = att = None
    for part in m.walk():
        if part.get_content_type() == "text/plain" and text is None:
            text = part.get_payload(decode=True).replace(b"\r\n", b"\n")
        elif part.get_filename() == "blob.bin":
            att = part.get_payload(decode=True)
    got = [hashlib.sha256(text or b"").hexdigest(), hashlib.sha256(att or b"").hexdigest()]
    if got != want:
        print("hash mismatch: text %s (want %s), attachment %s (want %s)"
              % (got[0], want[0], got[1], want[1]))
        sys.exit(1)
    print("text sha256 %s... and 2 MiB attachment sha256 %s... match" % (got[0][:12], got[1][:12]))


def dsn(path):
    m = email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)
    if m.get_content_type() != "multipart/report" or \
            m.get_param("report-type") != "delivery-status":
        print("not a delivery report: %s" % m.get_content_type())
        sys.exit(1)
    parts = [p for p in m.walk() if p.get_content_type() == "message/delivery-status"]
    if not parts:
        print("no message/delivery-status part")
        sys.exit(1)
    blocks = parts[0].get_payload()
    out = []
    for b in blocks[1:]:
        out.append("%s %s" % (b.get("Action"), b.get("Status")))
    if not out:
        print("no per-recipient fields")
        sys.exit(1)
    print("; ".join(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "send":
        send(*sys.argv[2:6], *(sys.argv[6:8] or ["x"]))
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "dsn":
        dsn(sys.argv[2])
    else:
        sys.exit(__doc__)
