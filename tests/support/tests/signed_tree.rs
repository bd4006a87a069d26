//! The signed DNS tree itself: unbound validates the secure zone (AD bit), leaves the insecure
//! delegation unauthenticated and refuses the bogus zone (SERVFAIL); knot serves signatures.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use postern_test_support::signed_dns::{SignedDnsTree, Zone};

fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    q.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn secure_insecure_and_bogus_zones() {
    let Some(tree) = SignedDnsTree::start(&[
        Zone::secure("secure.test")
            .record("@ MX 10 mx")
            .record("mx A 127.0.0.1")
            .record("_25._tcp.mx TLSA 3 1 1 abababababababababababababababababababababababababababababababab"),
        Zone::insecure("insecure.test").record("mx A 127.0.0.1"),
        Zone::bogus("bogus.test").record("mx A 127.0.0.1"),
    ]) else {
        return;
    };
    let secure = ask(
        tree.unbound_addr,
        "_25._tcp.mx.secure.test.",
        RecordType::TLSA,
    );
    assert_eq!(secure.metadata.response_code, ResponseCode::NoError);
    assert!(secure.metadata.authentic_data, "{secure:?}");
    assert!(
        secure
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::TLSA)
    );

    let insecure = ask(tree.unbound_addr, "mx.insecure.test.", RecordType::A);
    assert_eq!(insecure.metadata.response_code, ResponseCode::NoError);
    assert!(!insecure.metadata.authentic_data);
    assert_eq!(insecure.answers.len(), 1);

    let bogus = ask(tree.unbound_addr, "mx.bogus.test.", RecordType::A);
    assert_eq!(bogus.metadata.response_code, ResponseCode::ServFail);

    // knot itself answers with signatures, and the anchor file holds the root's key.
    let direct = ask(tree.knot_addr, "secure.test.", RecordType::MX);
    assert!(
        direct
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG)
    );
    let anchor = std::fs::read_to_string(&tree.root_dnskey).unwrap();
    assert!(anchor.starts_with(". 3600 IN DNSKEY 257 3 13 "), "{anchor}");
}
