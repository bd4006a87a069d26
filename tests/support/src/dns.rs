//! A real, authoritative-only DNS server for tests, on loopback.
//!
//! [`TestDns::start`] binds UDP and TCP on the same port of `127.0.0.1` (the port is chosen by
//! the system) and answers from an in-memory table that a test can change at any time while
//! the server runs. The wire format is parsed and built with `hickory-proto`.
//!
//! Semantics, chosen to exercise a resolver the way real servers do:
//! - answers for names it knows carry the AA bit; every record has TTL [`TTL`];
//! - a name with no records at all gets NXDOMAIN; a name that exists without the asked type gets
//!   NOERROR with an empty answer (NODATA); both carry an SOA in the authority section (owner
//!   the root, minimum [`TTL`]) so that resolvers can cache them negatively;
//! - a CNAME is followed for every query type other than CNAME itself: the answer holds the
//!   CNAME and then the target's records (chains are followed up to 8 links);
//! - names are case-insensitive and the trailing dot is optional;
//! - over UDP an answer larger than 512 bytes — or than the EDNS payload size the query
//!   advertises, if it has an OPT record — is replaced by an empty answer with the TC bit set,
//!   so that falling back to TCP can be tested; TCP answers are never truncated;
//! - [`TestDns::servfail`] makes a name answer SERVFAIL whatever records it has;
//! - [`TestDns::unresponsive`] makes queries for a name go unanswered (as a dead or
//!   firewalled authoritative server does), so the resolver times out.
//!
//! To query it from a test, build a resolver with [`resolver_for`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TLSA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The TTL of every record the server hands out (and the negative-caching TTL).
pub const TTL: u32 = 60;

/// The largest UDP answer sent to a query without EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;
/// The EDNS payload size this server advertises in its own OPT record.
const SERVER_EDNS_PAYLOAD: u16 = 1232;
/// How many CNAME links are followed before giving up (SERVFAIL).
const MAX_CNAME_CHAIN: usize = 8;
/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// A loopback DNS server for tests. Dropping it stops the server.
///
/// All record-adding methods take `&self` and may be called while queries are being answered.
/// Names are given in presentation form (`"mx1.example.test"`, trailing dot optional); a name
/// that cannot be parsed panics, as befits a test helper.
#[derive(Debug)]
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// Records by normalised owner name, in the order they were added.
    records: HashMap<String, Vec<RData>>,
    /// Names that answer SERVFAIL.
    servfail: HashSet<String>,
    /// Names whose queries are never answered.
    silent: HashSet<String>,
    /// Queries received (UDP and TCP) by normalised query name.
    queries: HashMap<String, usize>,
    /// Queries received over TCP by normalised query name.
    tcp_queries: HashMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl TestDns {
    /// Starts the server on `127.0.0.1`, UDP and TCP on one system-chosen port.
    ///
    /// Must be called inside a Tokio runtime; the server runs as tasks on it.
    pub async fn start() -> TestDns {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("UDP socket has a local address");
        let state = Arc::new(Mutex::new(State::default()));
        let udp_task = tokio::spawn(serve_udp(udp, state.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, state.clone()));
        TestDns {
            addr,
            state,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// The server's address; the same port serves UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds an MX record: `domain MX preference exchange`.
    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) {
        self.add(domain, RData::MX(MX::new(preference, parse_name(exchange))));
    }

    /// Adds a null MX record (RFC 7505): `domain MX 0 .`. Other MX records of `domain` stay.
    pub fn null_mx(&self, domain: &str) {
        self.add(domain, RData::MX(MX::new(0, Name::root())));
    }

    /// Adds an A record.
    pub fn add_a(&self, name: &str, addr: Ipv4Addr) {
        self.add(name, RData::A(A(addr)));
    }

    /// Adds an AAAA record.
    pub fn add_aaaa(&self, name: &str, addr: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(addr)));
    }

    /// Adds one TXT record holding `text`. Text longer than 255 bytes is split into several
    /// 255-byte character-strings (a reader concatenates them back, as for SPF or DKIM).
    pub fn add_txt(&self, name: &str, text: &str) {
        let chunks: Vec<&[u8]> = if text.is_empty() {
            vec![&[][..]]
        } else {
            text.as_bytes().chunks(255).collect()
        };
        self.add(name, RData::TXT(TXT::from_bytes(chunks)));
    }

    /// Adds one TXT record made of exactly these character-strings (each at most 255 bytes).
    pub fn add_txt_strings(&self, name: &str, strings: &[&str]) {
        assert!(
            strings.iter().all(|s| s.len() <= 255),
            "a TXT character-string holds at most 255 bytes"
        );
        self.add(
            name,
            RData::TXT(TXT::from_bytes(
                strings.iter().map(|s| s.as_bytes()).collect(),
            )),
        );
    }

    /// Adds a TLSA record (RFC 6698), e.g. `add_tlsa("_25._tcp.mx.example.test", 3, 1, 1, digest)`
    /// for DANE-EE, SPKI, SHA-256.
    pub fn add_tlsa(&self, name: &str, usage: u8, selector: u8, matching: u8, data: Vec<u8>) {
        self.add(
            name,
            RData::TLSA(TLSA::new(
                CertUsage::from(usage),
                Selector::from(selector),
                Matching::from(matching),
                data,
            )),
        );
    }

    /// Adds a CNAME record `name CNAME target`.
    pub fn add_cname(&self, name: &str, target: &str) {
        self.add(name, RData::CNAME(CNAME(parse_name(target))));
    }

    /// Makes every query for `name` (any type) answer SERVFAIL, until [`TestDns::remove`].
    pub fn servfail(&self, name: &str) {
        let key = normalise(name);
        parse_name(name);
        self.lock().servfail.insert(key);
    }

    /// Makes every query for `name` (any type) go unanswered, until [`TestDns::remove`].
    /// The query is still counted.
    pub fn unresponsive(&self, name: &str) {
        let key = normalise(name);
        parse_name(name);
        self.lock().silent.insert(key);
    }

    /// Forgets every record of `name` and its SERVFAIL mark; it then answers NXDOMAIN.
    /// Query counts are kept.
    pub fn remove(&self, name: &str) {
        let key = normalise(name);
        let mut state = self.lock();
        state.records.remove(&key);
        state.servfail.remove(&key);
        state.silent.remove(&key);
    }

    /// How many queries (any type, UDP and TCP) arrived for `name` so far.
    pub fn query_count(&self, name: &str) -> usize {
        self.lock()
            .queries
            .get(&normalise(name))
            .copied()
            .unwrap_or(0)
    }

    /// How many of those queries arrived over TCP.
    pub fn tcp_query_count(&self, name: &str) -> usize {
        self.lock()
            .tcp_queries
            .get(&normalise(name))
            .copied()
            .unwrap_or(0)
    }

    fn add(&self, name: &str, rdata: RData) {
        parse_name(name);
        self.lock()
            .records
            .entry(normalise(name))
            .or_default()
            .push(rdata);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Builds a Tokio resolver that asks only the server at `addr` (UDP, with fallback to TCP on the
/// same port when an answer is truncated), and reads no system configuration: not
/// `/etc/resolv.conf`, not `/etc/hosts`.
///
/// It otherwise keeps hickory's defaults (EDNS0 with a 1232-byte payload, response cache on,
/// no search domains). The pattern, for hickory-resolver 0.26:
///
/// ```no_run
/// # use std::net::SocketAddr;
/// use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
/// use hickory_resolver::net::runtime::TokioRuntimeProvider;
/// use hickory_resolver::TokioResolver;
///
/// # fn f(addr: SocketAddr) -> TokioResolver {
/// let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
/// for conn in &mut ns.connections {
///     conn.port = addr.port(); // the default is 53
/// }
/// let config = ResolverConfig::from_name_servers(vec![ns]);
/// let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
/// builder.options_mut().use_hosts_file = ResolveHosts::Never;
/// builder.build().expect("resolver")
/// # }
/// ```
pub fn resolver_for(addr: SocketAddr) -> TokioResolver {
    let mut name_server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut name_server.connections {
        connection.port = addr.port();
    }
    let config = ResolverConfig::from_name_servers(vec![name_server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(2);
    builder
        .build()
        .expect("a resolver with an explicit name server builds")
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The table key of a name: lower case, no trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_name(name: &str) -> Name {
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() {
        return Name::root();
    }
    let mut parsed = Name::from_ascii(trimmed)
        .unwrap_or_else(|e| panic!("test DNS: {name:?} is not a valid domain name: {e}"));
    parsed.set_fqdn(true);
    parsed
}

/// Binds UDP on 127.0.0.1:0, then TCP on the same port; retries if that port is taken for TCP.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a UDP socket on 127.0.0.1");
        let addr = udp.local_addr().expect("UDP socket has a local address");
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp),
            Err(e) => last_error = Some(e),
        }
    }
    panic!("test DNS: no port free for both UDP and TCP: {last_error:?}");
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // e.g. ICMP port unreachable reported for an earlier reply; keep serving.
            Err(_) => continue,
        };
        if let Some(reply) = handle(&buf[..len], &state, Transport::Udp) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<State>>) {
    // Connection tasks live in this set, so aborting this task ends them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_tcp_connection(stream, state.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let request = match tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await {
            Ok(Ok(request)) => request,
            _ => return,
        };
        let Some(reply) = handle(&request, &state, Transport::Tcp) else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut frame = Vec::with_capacity(reply.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&reply);
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Decodes a request and encodes the reply; `None` means send nothing.
fn handle(bytes: &[u8], state: &Mutex<State>, transport: Transport) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    if is_silent(&request, state) {
        return None;
    }
    let response = respond(&request, state, transport);
    let encoded = response.to_vec().ok()?;
    if transport == Transport::Udp {
        let limit = match &request.edns {
            Some(edns) => usize::from(edns.max_payload()).max(CLASSIC_UDP_LIMIT),
            None => CLASSIC_UDP_LIMIT,
        };
        if encoded.len() > limit {
            return response.truncate().to_vec().ok();
        }
    }
    Some(encoded)
}

/// Counts and swallows a query for an [`TestDns::unresponsive`] name.
fn is_silent(request: &Message, state: &Mutex<State>) -> bool {
    let [query] = request.queries.as_slice() else {
        return false;
    };
    let key = normalise(&query.name().to_ascii());
    let mut state = lock(state);
    if !state.silent.contains(&key) {
        return false;
    }
    *state.queries.entry(key).or_default() += 1;
    true
}

fn respond(request: &Message, state: &Mutex<State>, transport: Transport) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(SERVER_EDNS_PAYLOAD);
        response.set_edns(edns);
    }

    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response;
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };

    let mut state = lock(state);
    let key = normalise(&query.name().to_ascii());
    *state.queries.entry(key.clone()).or_default() += 1;
    if transport == Transport::Tcp {
        *state.tcp_queries.entry(key).or_default() += 1;
    }

    if query.query_class() != DNSClass::IN {
        response.metadata.response_code = ResponseCode::Refused;
        return response;
    }

    let qtype = query.query_type();
    // The first owner keeps the case of the question, as resolvers that randomise case expect.
    let mut owner = query.name().clone();
    for _ in 0..MAX_CNAME_CHAIN {
        let key = normalise(&owner.to_ascii());
        if state.servfail.contains(&key) {
            response.answers.clear();
            response.metadata.response_code = ResponseCode::ServFail;
            return response;
        }
        let Some(records) = state.records.get(&key) else {
            // Nothing at this name. After a CNAME the code still describes the last name (RFC 6604).
            response.metadata.authoritative = true;
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(negative_soa());
            return response;
        };
        response.metadata.authoritative = true;

        let matching: Vec<&RData> = records
            .iter()
            .filter(|rdata| qtype == RecordType::ANY || rdata.record_type() == qtype)
            .collect();
        if !matching.is_empty() {
            for rdata in matching {
                response.add_answer(Record::from_rdata(owner.clone(), TTL, rdata.clone()));
            }
            return response;
        }
        let cname = records.iter().find_map(|rdata| match rdata {
            RData::CNAME(target) => Some(target.0.clone()),
            _ => None,
        });
        match cname {
            Some(target) if qtype != RecordType::CNAME => {
                response.add_answer(Record::from_rdata(
                    owner.clone(),
                    TTL,
                    RData::CNAME(CNAME(target.clone())),
                ));
                owner = target;
            }
            _ => {
                // NODATA: the name exists, the type does not.
                response.add_authority(negative_soa());
                return response;
            }
        }
    }
    // A CNAME chain too long (or a loop).
    response.answers.clear();
    response.metadata.authoritative = false;
    response.metadata.response_code = ResponseCode::ServFail;
    response
}

/// The SOA placed in negative answers so resolvers can cache them (RFC 2308).
fn negative_soa() -> Record {
    let soa = SOA::new(
        parse_name("ns.test-dns.invalid"),
        parse_name("hostmaster.test-dns.invalid"),
        1,
        3600,
        600,
        86_400,
        TTL,
    );
    Record::from_rdata(Name::root(), TTL, RData::SOA(soa))
}

#[cfg(test)]
mod tests {
    use super::*;

    use hickory_proto::op::Query;
    use hickory_resolver::net::{DnsError, NetError};

    fn mx_of(lookup: &hickory_resolver::lookup::Lookup) -> Vec<(u16, String)> {
        let mut mx: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        mx.sort();
        mx
    }

    fn txt_strings(lookup: &hickory_resolver::lookup::Lookup) -> Vec<Vec<Vec<u8>>> {
        lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => None,
            })
            .collect()
    }

    fn response_code(err: &NetError) -> Option<ResponseCode> {
        match err {
            NetError::Dns(DnsError::NoRecordsFound(no)) => Some(no.response_code),
            NetError::Dns(DnsError::ResponseCode(code)) => Some(*code),
            _ => None,
        }
    }

    /// Sends one raw query over UDP and returns the decoded answer and its size on the wire.
    async fn raw_udp_query(
        addr: SocketAddr,
        name: &str,
        qtype: RecordType,
        edns: Option<u16>,
    ) -> (Message, usize) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(parse_name(name), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            query.set_edns(e);
        }
        socket
            .send_to(&query.to_vec().unwrap(), addr)
            .await
            .unwrap();
        let mut buf = vec![0u8; 65_535];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("answer within 5 s")
            .unwrap();
        let answer = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(answer.metadata.id, query.metadata.id);
        (answer, len)
    }

    async fn raw_tcp_query(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut query = Message::query();
        query.add_query(Query::query(parse_name(name), qtype));
        let bytes = query.to_vec().unwrap();
        stream
            .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let answer = read_frame(&mut stream).await.unwrap();
        Message::from_vec(&answer).unwrap()
    }

    #[tokio::test]
    async fn listens_on_loopback_udp_and_tcp_same_port() {
        let dns = TestDns::start().await;
        assert!(dns.addr().ip().is_loopback());
        assert_ne!(dns.addr().port(), 0);
        dns.add_a("host.example.test", Ipv4Addr::new(127, 0, 0, 9));
        let (udp, _) = raw_udp_query(dns.addr(), "host.example.test", RecordType::A, None).await;
        let tcp = raw_tcp_query(dns.addr(), "host.example.test", RecordType::A).await;
        for answer in [&udp, &tcp] {
            assert!(answer.metadata.authoritative);
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert_eq!(answer.answers.len(), 1);
            assert_eq!(answer.answers[0].ttl, TTL);
        }
        assert_eq!(dns.query_count("host.example.test"), 2);
        assert_eq!(dns.tcp_query_count("host.example.test"), 1);
    }

    #[tokio::test]
    async fn mx_with_preferences() {
        let dns = TestDns::start().await;
        dns.add_mx("example.test", 20, "mx2.example.test");
        dns.add_mx("example.test", 10, "mx1.example.test.");
        let resolver = resolver_for(dns.addr());
        let lookup = resolver.mx_lookup("example.test.").await.unwrap();
        assert_eq!(
            mx_of(&lookup),
            vec![
                (10, "mx1.example.test.".to_string()),
                (20, "mx2.example.test.".to_string())
            ]
        );
        assert!(lookup.answers().iter().all(|r| r.ttl <= TTL));
    }

    #[tokio::test]
    async fn a_and_aaaa() {
        let dns = TestDns::start().await;
        dns.add_a("mx.example.test", Ipv4Addr::new(127, 0, 0, 2));
        dns.add_a("mx.example.test", Ipv4Addr::new(127, 0, 0, 3));
        dns.add_aaaa("mx.example.test", Ipv6Addr::LOCALHOST);
        let resolver = resolver_for(dns.addr());

        let v4 = resolver.ipv4_lookup("mx.example.test.").await.unwrap();
        let mut v4: Vec<Ipv4Addr> = v4
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        v4.sort();
        assert_eq!(
            v4,
            vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]
        );

        let v6 = resolver.ipv6_lookup("mx.example.test.").await.unwrap();
        let v6: Vec<Ipv6Addr> = v6
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect();
        assert_eq!(v6, vec![Ipv6Addr::LOCALHOST]);

        let ips = resolver.lookup_ip("mx.example.test.").await.unwrap();
        assert_eq!(ips.iter().count(), 3);
    }

    #[tokio::test]
    async fn names_are_case_insensitive_and_dot_optional() {
        let dns = TestDns::start().await;
        dns.add_a("Mixed.Example.TEST.", Ipv4Addr::new(127, 0, 0, 4));
        let resolver = resolver_for(dns.addr());
        let lookup = resolver.ipv4_lookup("mixed.example.test").await.unwrap();
        assert_eq!(lookup.answers().len(), 1);
        let (raw, _) = raw_udp_query(dns.addr(), "MIXED.EXAMPLE.test", RecordType::A, None).await;
        assert_eq!(raw.answers.len(), 1);
        // The answer keeps the case of the question.
        assert_eq!(raw.answers[0].name.to_ascii(), "MIXED.EXAMPLE.test.");
        assert_eq!(dns.query_count("mixed.example.test."), 2);
        assert_eq!(dns.query_count("MIXED.example.TEST"), 2);
    }

    #[tokio::test]
    async fn txt_long_text_is_split_into_character_strings() {
        let dns = TestDns::start().await;
        let long: String = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        dns.add_txt("sel._domainkey.example.test", &long);
        dns.add_txt("example.test", "v=spf1 -all");
        dns.add_txt_strings("multi.example.test", &["one", "two"]);
        let resolver = resolver_for(dns.addr());

        let lookup = resolver
            .txt_lookup("sel._domainkey.example.test.")
            .await
            .unwrap();
        let strings = txt_strings(&lookup);
        assert_eq!(strings.len(), 1, "one TXT record");
        assert_eq!(strings[0].len(), 2, "two character-strings");
        assert_eq!(strings[0][0].len(), 255);
        assert_eq!(strings[0].concat(), long.as_bytes());

        let spf = resolver.txt_lookup("example.test.").await.unwrap();
        assert_eq!(txt_strings(&spf), vec![vec![b"v=spf1 -all".to_vec()]]);

        let multi = resolver.txt_lookup("multi.example.test.").await.unwrap();
        assert_eq!(
            txt_strings(&multi),
            vec![vec![b"one".to_vec(), b"two".to_vec()]]
        );
    }

    #[tokio::test]
    async fn tlsa() {
        let dns = TestDns::start().await;
        let digest: Vec<u8> = (0u8..32).collect();
        dns.add_tlsa("_25._tcp.mx.example.test", 3, 1, 1, digest.clone());
        dns.add_tlsa("_25._tcp.mx.example.test", 2, 0, 2, vec![0xab; 64]);
        let resolver = resolver_for(dns.addr());
        let lookup = resolver
            .tlsa_lookup("_25._tcp.mx.example.test.")
            .await
            .unwrap();
        let tlsa: Vec<&TLSA> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tlsa.len(), 2);
        let ee = tlsa
            .iter()
            .find(|t| t.cert_usage == CertUsage::DaneEe)
            .expect("the DANE-EE record");
        assert_eq!(ee.selector, Selector::Spki);
        assert_eq!(ee.matching, Matching::Sha256);
        assert_eq!(ee.cert_data, digest);
        let ta = tlsa
            .iter()
            .find(|t| t.cert_usage == CertUsage::DaneTa)
            .expect("the DANE-TA record");
        assert_eq!(ta.selector, Selector::Full);
        assert_eq!(ta.matching, Matching::Sha512);
    }

    #[tokio::test]
    async fn nxdomain_versus_nodata() {
        let dns = TestDns::start().await;
        dns.add_a("only-a.example.test", Ipv4Addr::new(127, 0, 0, 5));
        let resolver = resolver_for(dns.addr());

        let nx = resolver
            .mx_lookup("absent.example.test.")
            .await
            .unwrap_err();
        assert!(nx.is_nx_domain(), "{nx:?}");

        let nodata = resolver
            .mx_lookup("only-a.example.test.")
            .await
            .unwrap_err();
        assert!(nodata.is_no_records_found(), "{nodata:?}");
        assert!(!nodata.is_nx_domain(), "{nodata:?}");
        assert_eq!(response_code(&nodata), Some(ResponseCode::NoError));

        // On the wire: both authoritative, with an SOA for negative caching.
        let (raw_nx, _) =
            raw_udp_query(dns.addr(), "absent.example.test", RecordType::MX, None).await;
        assert_eq!(raw_nx.metadata.response_code, ResponseCode::NXDomain);
        let (raw_nodata, _) =
            raw_udp_query(dns.addr(), "only-a.example.test", RecordType::MX, None).await;
        assert_eq!(raw_nodata.metadata.response_code, ResponseCode::NoError);
        for raw in [&raw_nx, &raw_nodata] {
            assert!(raw.metadata.authoritative);
            assert!(raw.answers.is_empty());
            assert_eq!(raw.authorities.len(), 1);
            assert_eq!(raw.authorities[0].record_type(), RecordType::SOA);
        }
    }

    #[tokio::test]
    async fn null_mx() {
        let dns = TestDns::start().await;
        dns.null_mx("nomail.example.test");
        let resolver = resolver_for(dns.addr());
        let lookup = resolver.mx_lookup("nomail.example.test.").await.unwrap();
        let mx = mx_of(&lookup);
        assert_eq!(mx, vec![(0, ".".to_string())]);
        let exchange = lookup
            .answers()
            .iter()
            .find_map(|r| match &r.data {
                RData::MX(mx) => Some(mx.exchange.clone()),
                _ => None,
            })
            .unwrap();
        assert!(exchange.is_root());
    }

    #[tokio::test]
    async fn cname_is_followed() {
        let dns = TestDns::start().await;
        dns.add_cname("alias.example.test", "real.example.test");
        dns.add_a("real.example.test", Ipv4Addr::new(127, 0, 0, 6));
        dns.add_mx("real.example.test", 5, "mx.real.example.test");
        dns.add_txt("real.example.test", "hello");
        dns.add_cname("dangling.example.test", "nowhere.example.test");
        let resolver = resolver_for(dns.addr());

        let a = resolver.ipv4_lookup("alias.example.test.").await.unwrap();
        let types: Vec<RecordType> = a.answers().iter().map(Record::record_type).collect();
        assert!(types.contains(&RecordType::CNAME), "{types:?}");
        assert!(
            a.answers()
                .iter()
                .any(|r| r.data == RData::A(A::new(127, 0, 0, 6)))
        );

        let mx = resolver.mx_lookup("alias.example.test.").await.unwrap();
        assert_eq!(mx_of(&mx), vec![(5, "mx.real.example.test.".to_string())]);

        let txt = resolver.txt_lookup("alias.example.test.").await.unwrap();
        assert_eq!(txt_strings(&txt), vec![vec![b"hello".to_vec()]]);

        // Raw: CNAME first, then the target's records, owned by the target.
        let (raw, _) = raw_udp_query(dns.addr(), "alias.example.test", RecordType::A, None).await;
        assert_eq!(raw.answers.len(), 2);
        assert_eq!(raw.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(raw.answers[1].name.to_ascii(), "real.example.test.");

        // Asking for the CNAME itself does not follow it.
        let (raw, _) =
            raw_udp_query(dns.addr(), "alias.example.test", RecordType::CNAME, None).await;
        assert_eq!(raw.answers.len(), 1);

        // A CNAME to nothing: the CNAME, and NXDOMAIN for the target (RFC 6604).
        let (raw, _) =
            raw_udp_query(dns.addr(), "dangling.example.test", RecordType::A, None).await;
        assert_eq!(raw.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(raw.answers.len(), 1);
        assert_eq!(raw.answers[0].record_type(), RecordType::CNAME);
    }

    #[tokio::test]
    async fn servfail_and_remove() {
        let dns = TestDns::start().await;
        dns.add_mx("broken.example.test", 10, "mx.broken.example.test");
        dns.servfail("broken.example.test");
        let resolver = resolver_for(dns.addr());
        let err = resolver
            .mx_lookup("broken.example.test.")
            .await
            .unwrap_err();
        assert_eq!(response_code(&err), Some(ResponseCode::ServFail), "{err:?}");
        assert!(!err.is_nx_domain());
        assert!(dns.query_count("broken.example.test") >= 1);

        let (raw, _) = raw_udp_query(dns.addr(), "broken.example.test", RecordType::MX, None).await;
        assert_eq!(raw.metadata.response_code, ResponseCode::ServFail);
        assert!(raw.answers.is_empty());

        dns.remove("broken.example.test");
        let (raw, _) = raw_udp_query(dns.addr(), "broken.example.test", RecordType::MX, None).await;
        assert_eq!(raw.metadata.response_code, ResponseCode::NXDomain);
    }

    #[tokio::test]
    async fn records_added_while_running_and_cache_is_observable() {
        let dns = TestDns::start().await;
        let resolver = resolver_for(dns.addr());
        let err = resolver
            .ipv4_lookup("late.example.test.")
            .await
            .unwrap_err();
        assert!(err.is_nx_domain());

        dns.add_a("late.example.test", Ipv4Addr::new(127, 0, 0, 7));
        dns.add_a("cached.example.test", Ipv4Addr::new(127, 0, 0, 8));
        let fresh = resolver_for(dns.addr());
        assert_eq!(
            fresh
                .ipv4_lookup("late.example.test.")
                .await
                .unwrap()
                .answers()
                .len(),
            1
        );

        // The second lookup is answered from the resolver's cache: one query on the wire.
        fresh.ipv4_lookup("cached.example.test.").await.unwrap();
        fresh.ipv4_lookup("cached.example.test.").await.unwrap();
        assert_eq!(dns.query_count("cached.example.test"), 1);
    }

    #[tokio::test]
    async fn truncation_and_tcp_fallback() {
        let dns = TestDns::start().await;
        // Big enough to overflow both 512 bytes and hickory's EDNS payload of 1232 bytes.
        for i in 0..12 {
            dns.add_txt("big.example.test", &format!("{i:02}-{}", "x".repeat(200)));
        }
        dns.add_txt("medium.example.test", &"m".repeat(700));

        // Without EDNS: anything over 512 bytes is truncated.
        let (raw, len) =
            raw_udp_query(dns.addr(), "medium.example.test", RecordType::TXT, None).await;
        assert!(raw.metadata.truncation);
        assert!(raw.answers.is_empty());
        assert!(len <= 512);
        // With EDNS and a big enough payload size it is not.
        let (raw, len) = raw_udp_query(
            dns.addr(),
            "medium.example.test",
            RecordType::TXT,
            Some(4096),
        )
        .await;
        assert!(!raw.metadata.truncation);
        assert_eq!(raw.answers.len(), 1);
        assert!(len > 512);
        assert!(raw.edns.is_some(), "an OPT record answers an OPT record");

        // The resolver gets the truncated UDP answer and retries over TCP.
        let resolver = resolver_for(dns.addr());
        let lookup = resolver.txt_lookup("big.example.test.").await.unwrap();
        assert_eq!(txt_strings(&lookup).len(), 12);
        assert!(dns.tcp_query_count("big.example.test") >= 1);
        assert!(dns.query_count("big.example.test") > dns.tcp_query_count("big.example.test"));
    }

    #[tokio::test]
    async fn tcp_only_resolver_works() {
        let dns = TestDns::start().await;
        dns.add_mx("tcp.example.test", 1, "mx.tcp.example.test");
        let mut ns = NameServerConfig::tcp(dns.addr().ip());
        for c in &mut ns.connections {
            c.port = dns.addr().port();
        }
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        let resolver = builder.build().unwrap();
        let lookup = resolver.mx_lookup("tcp.example.test.").await.unwrap();
        assert_eq!(
            mx_of(&lookup),
            vec![(1, "mx.tcp.example.test.".to_string())]
        );
        assert_eq!(dns.tcp_query_count("tcp.example.test"), 1);
    }
}
