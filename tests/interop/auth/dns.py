#!/usr/bin/python3
"""A tiny authoritative DNS server for the DKIM interop test (loopback only).

    dns.py ZONE_FILE [ADDR] [PORT]

Answers TXT questions from ZONE_FILE, re-read for every question so that records can be
added while it runs. Each line: NAME TXT-VALUE (the value may be longer than 255 octets; it
is split into character-strings). Other names and types get NXDOMAIN / an empty answer.
UDP only (answers here are small enough, or truncated with TC so that a client retries
over TCP, which this server also answers).
"""
import socketserver
import sys
import threading

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord

ZONE = sys.argv[1]
ADDR = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 53


def records():
    out = {}
    with open(ZONE) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, value = line.split(" ", 1)
            out.setdefault(name.lower().rstrip("."), []).append(value)
    return out


def answer(data):
    q = DNSRecord.parse(data)
    reply = q.reply()
    name = str(q.q.qname).lower().rstrip(".")
    zone = records()
    if name not in zone:
        reply.header.rcode = RCODE.NXDOMAIN
    elif q.q.qtype == QTYPE.TXT:
        for value in zone[name]:
            b = value.encode()
            chunks = [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
            reply.add_answer(RR(q.q.qname, QTYPE.TXT, ttl=60, rdata=TXT(chunks)))
    return reply.pack()


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(data), self.client_address)


class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        n = int.from_bytes(self.rfile.read(2), "big")
        out = answer(self.rfile.read(n))
        self.wfile.write(len(out).to_bytes(2, "big") + out)


socketserver.UDPServer.allow_reuse_address = True
socketserver.TCPServer.allow_reuse_address = True
udp = socketserver.ThreadingUDPServer((ADDR, PORT), Udp)
tcp = socketserver.ThreadingTCPServer((ADDR, PORT), Tcp)
threading.Thread(target=tcp.serve_forever, daemon=True).start()
print("ready", flush=True)
udp.serve_forever()
