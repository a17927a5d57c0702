//! A fake authoritative DNS server for the zone `test.`, in-process on 127.0.0.1 (UDP and TCP on
//! one port), built from code and able to misbehave per name (SERVFAIL, REFUSED, silence).
//!
//! ```ignore
//! let dns = FakeDns::builder()
//!     .txt("_mta-sts.example.test", "v=STSv1; id=1")
//!     .mx("example.test", 10, "mx1.example.test")
//!     .a("mx1.example.test", Ipv4Addr::LOCALHOST)
//!     .servfail("broken.test")
//!     .start()
//!     .await;
//! let resolver = dns.resolver();
//! ```
//!
//! Every name lives in the one zone `test.` (SOA at the apex), so NXDOMAIN and NODATA are
//! answered authoritatively with the SOA in the authority section. A name exists when it or a
//! name below it has records: `example.test` is NODATA, not NXDOMAIN, when only
//! `_mta-sts.example.test` has records (RFC 8020). Names outside `test.` get REFUSED.
//!
//! hickory-server's `Server` does the sockets; the answers come from our own handler over hash
//! maps rather than `Catalog` + `InMemoryZoneHandler`, because the in-memory zone scans every
//! record of the zone for each negative answer, too slow for the fleet simulator's 10,000
//! domains. The handler follows CNAMEs inside the zone as an authoritative server does
//! (RFC 1034 §4.3.2), stopping before a name with a fault so the resolver asks that name itself.

use std::collections::{HashMap, HashSet};
use std::iter;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use mta_sts_exporter::probe::dns::{Dns, ResolverSettings};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// TTL of every record we serve; irrelevant to the exporter, which does not cache.
const TTL: u32 = 300;
/// How long a `silent` name keeps a query unanswered if the server is not stopped first.
const SILENCE: Duration = Duration::from_secs(60);
/// Longest CNAME chain the server follows inside the zone before answering what it has.
const MAX_CHASE: usize = 16;
/// The one zone we serve.
const APEX: &str = "test.";
const APEX_KEY: &str = "test";

/// Collects records and faults for a [`FakeDns`]. Names are given without the trailing dot,
/// are case-insensitive, and must be under `test`. Building is cheap string work (names are
/// parsed when answered): 30,000 records start in about 0.2 s in a debug build.
#[derive(Default)]
pub struct DnsBuilder {
    entries: Vec<Entry>,
    faults: Vec<(String, Fault)>,
    /// Names whose answers carry another owner name: key -> owner as written.
    wrong_owners: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Rcode(ResponseCode),
    Silent,
}

/// One record as given to the builder.
struct Entry {
    /// Owner name as written (its case goes on the wire).
    owner: String,
    data: Data,
}

enum Data {
    Ready(RData),
    Mx { preference: u16, exchange: String },
    Cname(String),
}

impl DnsBuilder {
    /// One TXT record holding `text`, split into 255-byte character-strings when longer.
    pub fn txt(self, name: &str, text: &str) -> Self {
        let chunks: Vec<&[u8]> = if text.is_empty() {
            vec![&[]]
        } else {
            text.as_bytes().chunks(255).collect()
        };
        self.record(name, RData::TXT(TXT::from_bytes(chunks)))
    }

    /// One TXT record made of these character-strings (each at most 255 bytes).
    pub fn txt_strings(self, name: &str, strings: &[&str]) -> Self {
        for s in strings {
            assert!(
                s.len() <= 255,
                "a TXT character-string holds at most 255 bytes: {s:?}"
            );
        }
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.record(name, RData::TXT(TXT::new(strings)))
    }

    /// One MX record; `exchange` keeps its case on the wire.
    pub fn mx(self, domain: &str, preference: u16, exchange: &str) -> Self {
        check_name(exchange);
        let exchange = exchange.to_string();
        self.entry(
            domain,
            Data::Mx {
                preference,
                exchange,
            },
        )
    }

    /// The RFC 7505 null MX: `0 .`.
    pub fn null_mx(self, domain: &str) -> Self {
        self.record(domain, RData::MX(MX::new(0, Name::root())))
    }

    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(name, RData::A(A(ip)))
    }

    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(name, RData::AAAA(AAAA(ip)))
    }

    /// `name` is an alias of `target` (which may be outside `test`, or not exist).
    pub fn cname(self, name: &str, target: &str) -> Self {
        check_name(target);
        self.entry(name, Data::Cname(target.to_string()))
    }

    /// Any record, for shapes the helpers above do not cover.
    pub fn record(self, name: &str, rdata: RData) -> Self {
        self.entry(name, Data::Ready(rdata))
    }

    /// Every query for this name answers SERVFAIL.
    pub fn servfail(self, name: &str) -> Self {
        self.fault(name, Fault::Rcode(ResponseCode::ServFail))
    }

    /// Every query for this name answers REFUSED.
    pub fn refused(self, name: &str) -> Self {
        self.fault(name, Fault::Rcode(ResponseCode::Refused))
    }

    /// Queries for this name are never answered (until the server stops, or 60 s).
    pub fn silent(self, name: &str) -> Self {
        self.fault(name, Fault::Silent)
    }

    /// Queries for `name` are answered with its records as usual, but every answer record
    /// carries the owner name `owner` instead (a spoofing or broken server). A resolver must
    /// not take them for records of `name`.
    pub fn wrong_owner(mut self, name: &str, owner: &str) -> Self {
        check_zone_name(name);
        check_name(owner);
        self.wrong_owners.push((key(name), owner.to_string()));
        self
    }

    fn entry(mut self, owner: &str, data: Data) -> Self {
        check_zone_name(owner);
        self.entries.push(Entry {
            owner: owner.to_string(),
            data,
        });
        self
    }

    fn fault(mut self, name: &str, fault: Fault) -> Self {
        check_zone_name(name);
        self.faults.push((key(name), fault));
        self
    }

    /// Binds UDP and TCP on one free port of 127.0.0.1 and of ::1 and starts serving.
    pub async fn start(self) -> FakeDns {
        let queries = Arc::new(AtomicUsize::new(0));
        let zone = Zone::new(self, queries.clone());
        let (udp, tcp, v6) = bind_pair().await;
        let addr = udp.local_addr().expect("bound UDP socket has an address");
        let mut server = Server::new(zone);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        let addr_v6 = v6.map(|(udp, tcp)| {
            let addr = udp.local_addr().expect("bound UDP socket has an address");
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 64);
            addr
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // A dropped sender also ends the wait; Drop aborts the task anyway.
            let _ = stopped.await;
            let _ = server.shutdown_gracefully().await;
        });
        FakeDns {
            addr,
            addr_v6,
            queries,
            stop: Some(stop),
            task,
        }
    }
}

/// A running fake server. Stops when dropped (the server task is aborted) or on
/// [`FakeDns::shutdown`].
pub struct FakeDns {
    /// UDP and TCP, same port, on 127.0.0.1.
    pub addr: SocketAddr,
    /// The same on ::1 (None where the machine has no IPv6 loopback).
    pub addr_v6: Option<SocketAddr>,
    queries: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeDns {
    pub fn builder() -> DnsBuilder {
        DnsBuilder::default()
    }

    /// Queries received so far, of any name and type, answered or not (UDP retransmissions
    /// count too).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Settings that ask only this server: timeout 500 ms, one try.
    pub fn resolver_settings(&self) -> ResolverSettings {
        ResolverSettings {
            server: Some(self.addr),
            timeout: Duration::from_millis(500),
            attempts: 1,
        }
    }

    /// A resolver built from [`FakeDns::resolver_settings`].
    pub fn resolver(&self) -> Dns {
        Dns::new(&self.resolver_settings()).expect("resolver for the fake server")
    }

    /// Stops accepting queries and waits until the server's tasks have ended; queries still
    /// waiting on a `silent` name are dropped unanswered.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The zone's data, indexed by lower-case name without the trailing dot, plus the faults.
struct Zone {
    soa: Record,
    records: HashMap<(String, RecordType), Vec<Entry>>,
    /// Every name that has records or has a name with records below it (within the zone).
    names: HashSet<String>,
    faults: HashMap<String, Fault>,
    wrong_owners: HashMap<String, String>,
    queries: Arc<AtomicUsize>,
}

/// What the zone says to one query.
struct Answer<'a> {
    code: ResponseCode,
    entries: Vec<&'a Entry>,
    with_soa: bool,
}

impl Zone {
    fn new(builder: DnsBuilder, queries: Arc<AtomicUsize>) -> Zone {
        let soa = Record::from_rdata(
            parse_name(APEX),
            TTL,
            RData::SOA(SOA::new(
                parse_name("ns.test."),
                parse_name("hostmaster.test."),
                1,
                3600,
                600,
                86400,
                60,
            )),
        );
        let mut records: HashMap<(String, RecordType), Vec<Entry>> = HashMap::new();
        let mut names = HashSet::new();
        names.insert(APEX.to_string());
        for entry in builder.entries {
            let owner = key(&entry.owner);
            // The owner and its ancestors up to the apex exist; stop at the first one known.
            let mut name = owner.as_str();
            while names.insert(name.to_string()) {
                match name.split_once('.') {
                    Some((_, parent)) => name = parent,
                    None => break,
                }
            }
            records
                .entry((owner, entry.data.record_type()))
                .or_default()
                .push(entry);
        }
        Zone {
            soa,
            records,
            names,
            faults: builder.faults.into_iter().collect(),
            wrong_owners: builder.wrong_owners.into_iter().collect(),
            queries,
        }
    }

    /// Authoritative lookup with CNAME chasing inside the zone. `name` is a key.
    fn answer(&self, name: &str, record_type: RecordType) -> Answer<'_> {
        let mut entries = Vec::new();
        let mut current = name.to_string();
        for _ in 0..MAX_CHASE {
            let chasing = !entries.is_empty();
            if chasing && (!in_zone(&current) || self.faults.contains_key(&current)) {
                // Out of our zone, or a name that misbehaves: the resolver asks it itself.
                break;
            }
            if let Some(found) = self.records.get(&(current.clone(), record_type)) {
                entries.extend(found);
                return Answer {
                    code: ResponseCode::NoError,
                    entries,
                    with_soa: false,
                };
            }
            let alias = match record_type {
                RecordType::CNAME => None,
                _ => self.records.get(&(current.clone(), RecordType::CNAME)),
            };
            let Some((entry, target)) = alias
                .and_then(|set| set.first())
                .and_then(|entry| Some((entry, entry.data.cname_target()?)))
            else {
                let exists = self.names.contains(&current);
                return Answer {
                    code: if exists {
                        ResponseCode::NoError
                    } else {
                        ResponseCode::NXDomain
                    },
                    entries,
                    with_soa: true,
                };
            };
            entries.push(entry);
            current = target;
        }
        Answer {
            code: ResponseCode::NoError,
            entries,
            with_soa: false,
        }
    }
}

impl Entry {
    fn to_record(&self) -> Result<Record, String> {
        let rdata = match &self.data {
            Data::Ready(rdata) => rdata.clone(),
            Data::Mx {
                preference,
                exchange,
            } => RData::MX(MX::new(*preference, try_parse_name(exchange)?)),
            Data::Cname(target) => RData::CNAME(CNAME(try_parse_name(target)?)),
        };
        Ok(Record::from_rdata(try_parse_name(&self.owner)?, TTL, rdata))
    }
}

impl Data {
    fn record_type(&self) -> RecordType {
        match self {
            Data::Ready(rdata) => rdata.record_type(),
            Data::Mx { .. } => RecordType::MX,
            Data::Cname(_) => RecordType::CNAME,
        }
    }

    /// The key of the alias target, for CNAME data.
    fn cname_target(&self) -> Option<String> {
        match self {
            Data::Cname(target) => Some(key(target)),
            Data::Ready(RData::CNAME(CNAME(target))) => Some(key(&target.to_ascii())),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Zone {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let response_edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);

        let query = match request.request_info() {
            Ok(info) => info.query,
            Err(_) => {
                let response = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return send(response_handle.send_response(response).await, metadata);
            }
        };
        let name = key(&query.name().to_ascii());
        match self.faults.get(&name) {
            Some(Fault::Silent) => {
                tokio::time::sleep(SILENCE).await;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Some(Fault::Rcode(code)) => {
                let response = builder.error_msg(&request.metadata, *code);
                return send(response_handle.send_response(response).await, metadata);
            }
            None => {}
        }
        if !in_zone(&name) {
            let response = builder.error_msg(&request.metadata, ResponseCode::Refused);
            return send(response_handle.send_response(response).await, metadata);
        }

        let answer = self.answer(&name, query.query_type());
        let records: Result<Vec<Record>, String> = answer
            .entries
            .iter()
            .map(|entry| match self.wrong_owners.get(&name) {
                None => entry.to_record(),
                Some(owner) => entry.to_record().and_then(|mut record| {
                    record.name = try_parse_name(owner)?;
                    Ok(record)
                }),
            })
            .collect();
        let records = match records {
            Ok(records) => records,
            Err(error) => {
                eprintln!("fake DNS: cannot build an answer for {name}: {error}");
                let response = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                return send(response_handle.send_response(response).await, metadata);
            }
        };
        metadata.authoritative = true;
        metadata.response_code = answer.code;
        let response = builder.build(
            metadata,
            records.iter(),
            iter::empty(),
            answer.with_soa.then_some(&self.soa),
            iter::empty(),
        );
        send(response_handle.send_response(response).await, metadata)
    }
}

fn send(
    sent: Result<ResponseInfo, hickory_server::net::NetError>,
    mut metadata: Metadata,
) -> ResponseInfo {
    sent.unwrap_or_else(|_| {
        metadata.response_code = ResponseCode::ServFail;
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    })
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1, and the same port on ::1
/// when the machine has an IPv6 loopback address.
async fn bind_pair() -> (UdpSocket, TcpListener, Option<(UdpSocket, TcpListener)>) {
    let ipv6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind UDP on 127.0.0.1");
        let addr = udp.local_addr().expect("bound UDP socket has an address");
        let Ok(tcp) = TcpListener::bind(addr).await else {
            continue;
        };
        if !ipv6 {
            return (udp, tcp, None);
        }
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port());
        if let (Ok(udp6), Ok(tcp6)) = (UdpSocket::bind(v6).await, TcpListener::bind(v6).await) {
            return (udp, tcp, Some((udp6, tcp6)));
        }
    }
    panic!("no port free for UDP and TCP on 127.0.0.1 and ::1 after 50 tries");
}

/// The index form of a name: lower-case, no trailing dot.
fn key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether an index key is in the zone `test.`.
fn in_zone(key: &str) -> bool {
    key == APEX_KEY || key.ends_with(".test")
}

/// A cheap shape check so that mistakes fail in the builder, not in an answer.
fn check_name(text: &str) {
    let bare = text.strip_suffix('.').unwrap_or(text);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_graphic())
        });
    assert!(valid, "bad DNS name {text:?}");
}

fn check_zone_name(text: &str) {
    check_name(text);
    assert!(
        in_zone(&key(text)),
        "the fake DNS serves only names under .test: {text:?}"
    );
}

fn try_parse_name(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|error| format!("bad name {text:?}: {error}"))?;
    name.set_fqdn(true);
    Ok(name)
}

fn parse_name(text: &str) -> Name {
    try_parse_name(text).unwrap_or_else(|error| panic!("{error}"))
}
