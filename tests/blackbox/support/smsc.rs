//! An SMSC on loopback for the SMPP tests, built on the server side of
//! rusmpp's codec (postern's sender uses rusmpp's client; this shares no
//! code with it beyond the PDU types). It binds transceivers with one
//! system id and password, answers `submit_sm` (or refuses it as told),
//! reassembles concatenated parts, decodes GSM-7 and UCS-2 with its own
//! tables, sends delivery receipts and can be killed and restarted on the
//! same port.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiverResp, DeliverSm, SubmitSm, SubmitSmResp};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::EsmClass;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::io::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};

/// One message as the handset would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub to: String,
    pub data_coding: u8,
    pub parts: usize,
    pub text: String,
    /// The first part's message id.
    pub message_id: String,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Concatenated parts waiting for the rest, by (to, reference).
    pending: Vec<(String, u8, u8, Vec<u8>, String)>,
    binds: usize,
    refused_binds: usize,
    unbinds: usize,
    throttle_next: usize,
    throttled: usize,
    deliver_sm_resps: usize,
    next_id: u64,
    /// Receipt `stat:` to send after each accepted submit, if any.
    receipt_stat: Option<String>,
    /// Destinations refused with ESME_RINVDSTADR.
    invalid_prefix: Option<String>,
    /// Also send a receipt for a message id nobody submitted.
    stray_receipts: bool,
    /// Answer the next submit with a PDU header claiming 1 MiB.
    poison_next: bool,
    /// How long the SMSC takes to answer a submit.
    latency: std::time::Duration,
}

pub struct Smsc {
    pub addr: SocketAddr,
    system_id: String,
    password: String,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Smsc {
    pub async fn start(system_id: &str, password: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let smsc = Self {
            addr,
            system_id: system_id.into(),
            password: password.into(),
            state: Default::default(),
            tasks: Default::default(),
        };
        smsc.serve(listener);
        smsc
    }

    fn serve(&self, listener: TcpListener) {
        let (state, tasks) = (self.state.clone(), self.tasks.clone());
        let creds = (self.system_id.clone(), self.password.clone());
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = connection(stream, state.clone(), creds.clone());
                tasks.lock().unwrap().spawn(conn);
            }
        });
    }

    /// Drops the listener and every session at once, as a crash would.
    pub fn kill(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn throttle_next(&self, n: usize) {
        self.state.lock().unwrap().throttle_next = n;
    }

    pub fn throttled(&self) -> usize {
        self.state.lock().unwrap().throttled
    }

    pub fn refuse_destinations(&self, prefix: &str) {
        self.state.lock().unwrap().invalid_prefix = Some(prefix.into());
    }

    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// The next submit gets an oversized PDU instead of its answer.
    pub fn poison_next(&self) {
        self.state.lock().unwrap().poison_next = true;
    }

    pub fn send_stray_receipts(&self) {
        self.state.lock().unwrap().stray_receipts = true;
    }

    pub fn send_receipts(&self, stat: &str) {
        self.state.lock().unwrap().receipt_stat = Some(stat.into());
    }

    /// (binds accepted, binds refused, unbinds, deliver_sm_resps).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let s = self.state.lock().unwrap();
        (s.binds, s.refused_binds, s.unbinds, s.deliver_sm_resps)
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        self.kill();
    }
}

type Writer = Arc<tokio::sync::Mutex<FramedWrite<WriteHalf<TcpStream>, CommandCodec>>>;

async fn connection(stream: TcpStream, state: Arc<Mutex<State>>, creds: (String, String)) {
    let (read, write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, CommandCodec::new());
    let writer: Writer = Arc::new(tokio::sync::Mutex::new(FramedWrite::new(
        write,
        CommandCodec::new(),
    )));
    let send = |c: Command| {
        let w = writer.clone();
        async move {
            let _ = w.lock().await.send(c).await;
        }
    };
    while let Some(Ok(cmd)) = reader.next().await {
        let n = cmd.sequence_number();
        let reply = |status, pdu: Pdu| Command::new(status, n, pdu);
        match cmd.pdu() {
            Some(Pdu::BindTransceiver(b)) => {
                let ok = b.system_id.to_string() == creds.0 && b.password.to_string() == creds.1;
                let status = {
                    let mut s = state.lock().unwrap();
                    if ok {
                        s.binds += 1;
                        CommandStatus::EsmeRok
                    } else {
                        s.refused_binds += 1;
                        CommandStatus::EsmeRinvpaswd
                    }
                };
                let resp = BindTransceiverResp::builder()
                    .system_id(COctetString::from_str("loopback-smsc").unwrap())
                    .build();
                send(reply(status, resp.into())).await;
                if !ok {
                    return;
                }
            }
            Some(Pdu::SubmitSm(_)) if std::mem::take(&mut state.lock().unwrap().poison_next) => {
                use tokio::io::AsyncWriteExt;
                let mut w = writer.lock().await;
                let _ = w.get_mut().write_all(&[0, 0x10, 0, 0, 0, 0, 0, 4]).await;
                let _ = w.get_mut().write_all(&[0xAB; 64]).await;
            }
            Some(Pdu::SubmitSm(sm)) => {
                let answer = answer_submit(state.clone(), writer.clone(), n, sm.clone());
                let latency = state.lock().unwrap().latency;
                if latency.is_zero() {
                    answer.await;
                } else {
                    // Answered after the SMSC's latency, concurrently, as a real one would.
                    tokio::spawn(async move {
                        tokio::time::sleep(latency).await;
                        answer.await;
                    });
                }
            }
            Some(Pdu::DeliverSmResp(_)) => state.lock().unwrap().deliver_sm_resps += 1,
            Some(Pdu::EnquireLink) => {
                send(reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp)).await
            }
            Some(Pdu::Unbind) => {
                state.lock().unwrap().unbinds += 1;
                send(reply(CommandStatus::EsmeRok, Pdu::UnbindResp)).await;
                return;
            }
            _ => {}
        }
    }
}

/// Records a submit, answers it, and sends its receipt(s) if asked to.
async fn answer_submit(state: Arc<Mutex<State>>, writer: Writer, n: u32, sm: SubmitSm) {
    let (status, id, receipt) = submit(&state, &sm);
    let resp = SubmitSmResp::builder()
        .message_id(COctetString::from_str(&id).unwrap())
        .build();
    let mut w = writer.lock().await;
    let _ = w.send(Command::new(status, n, resp)).await;
    let Some(stat) = receipt else { return };
    let stray = state.lock().unwrap().stray_receipts;
    let seq = 1_000_000 + n;
    let _ = w.send(receipt_for(seq, &sm, &id, &stat)).await;
    if stray {
        let _ = w
            .send(receipt_for(seq + 500_000, &sm, "no-such-id", "DELIVRD"))
            .await;
    }
}

/// Records a submit; the status to answer, the message id, and the receipt to send.
fn submit(state: &Mutex<State>, sm: &SubmitSm) -> (CommandStatus, String, Option<String>) {
    let mut s = state.lock().unwrap();
    let to = sm.destination_addr.to_string();
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        s.throttled += 1;
        return (CommandStatus::EsmeRthrottled, String::new(), None);
    }
    if s.invalid_prefix
        .as_deref()
        .is_some_and(|p| to.starts_with(p))
    {
        return (CommandStatus::EsmeRinvdstadr, String::new(), None);
    }
    s.next_id += 1;
    let id = format!("{:x}", 0xa000 + s.next_id);
    let coding = u8::from(sm.data_coding);
    let bytes = sm.short_message().as_ref().to_vec();
    let udhi = u8::from(sm.esm_class) & 0x40 != 0;
    if udhi && bytes.len() > 6 && bytes[..3] == [0x05, 0x00, 0x03] {
        let (reference, total, part) = (bytes[3], bytes[4], bytes[5]);
        s.pending
            .push((to.clone(), reference, part, bytes[6..].to_vec(), id.clone()));
        let mut mine: Vec<_> = s
            .pending
            .iter()
            .filter(|p| p.0 == to && p.1 == reference)
            .cloned()
            .collect();
        if mine.len() == usize::from(total) {
            mine.sort_by_key(|p| p.2);
            let all: Vec<u8> = mine.iter().flat_map(|p| p.3.clone()).collect();
            let first = mine[0].4.clone();
            s.pending.retain(|p| !(p.0 == to && p.1 == reference));
            s.received.push(Received {
                to,
                data_coding: coding,
                parts: mine.len(),
                text: decode(coding, &all),
                message_id: first,
            });
        }
    } else {
        s.received.push(Received {
            to,
            data_coding: coding,
            parts: 1,
            text: decode(coding, &bytes),
            message_id: id.clone(),
        });
    }
    (CommandStatus::EsmeRok, id, s.receipt_stat.clone())
}

fn receipt_for(seq: u32, sm: &SubmitSm, id: &str, stat: &str) -> Command {
    let text = format!(
        "id:{id} sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:{stat} err:000 text:"
    );
    let receipt = DeliverSm::builder()
        .source_addr(sm.destination_addr.clone())
        .destination_addr(sm.source_addr.clone())
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_str(&text).unwrap())
        .build();
    Command::new(CommandStatus::EsmeRok, seq, receipt)
}

/// GSM 03.38 default alphabet, code points 0x00..=0x7F.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

fn decode(coding: u8, bytes: &[u8]) -> String {
    match coding {
        0x08 => String::from_utf16(
            &bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        _ => {
            let table: Vec<char> = GSM7.chars().collect();
            let mut out = String::new();
            let mut it = bytes.iter();
            while let Some(&b) = it.next() {
                if b == 0x1B {
                    let e = it.next().copied().unwrap_or(0);
                    out.push(match e {
                        0x14 => '^',
                        0x28 => '{',
                        0x29 => '}',
                        0x2F => '\\',
                        0x3C => '[',
                        0x3D => '~',
                        0x3E => ']',
                        0x40 => '|',
                        0x65 => '€',
                        _ => '?',
                    });
                } else {
                    out.push(table[usize::from(b & 0x7F)]);
                }
            }
            out
        }
    }
}
